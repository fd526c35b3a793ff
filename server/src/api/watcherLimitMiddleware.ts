import { type CallContext, type ServerMiddleware, ServerError, Status } from "nice-grpc";

/** Response streams (watches, followed logs) one connection may hold open at once, by default. */
export const DEFAULT_MAX_WATCHERS_PER_CONNECTION = 100;

/**
 * Lets one connection hold at most `limit` response streams at once: one more fails with
 * RESOURCE_EXHAUSTED, saying so. A connection is a call's peer (`host:port`), unique among
 * the connections open at one moment. Unary calls are not counted: HTTP/2's limit on
 * concurrent streams (set above this one) bounds those.
 */
export function watcherLimitMiddleware(limit: number): ServerMiddleware {
  const open = new Map<string, number>();
  return async function* limitWatchers<Request, Response>(
    call: Parameters<ServerMiddleware>[0] & { request: Request },
    context: CallContext,
  ) {
    if (!call.responseStream) return yield* call.next(call.request, context);
    const streams = open.get(context.peer) ?? 0;
    if (streams >= limit) {
      throw new ServerError(
        Status.RESOURCE_EXHAUSTED,
        `this connection already has ${limit} watch streams open, the server's limit (--max-watchers-per-connection): end one, or watch over another connection`,
      );
    }
    open.set(context.peer, streams + 1);
    try {
      return yield* call.next(call.request, context);
    } finally {
      const left = open.get(context.peer)! - 1;
      if (left === 0) open.delete(context.peer);
      else open.set(context.peer, left);
    }
  } as ServerMiddleware;
}
