import { createHash, timingSafeEqual } from "node:crypto";
import { type CallContext, type ServerMiddleware, ServerError, Status } from "nice-grpc";

/** Calls anyone may make: a load balancer's health probe carries no token. */
const OPEN_SERVICES = ["/grpc.health.v1.Health/"];

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * Lets a call through only with `authorization: Bearer <token>` metadata. Tokens are
 * compared as SHA-256 digests with a constant-time comparison, so neither the token's
 * content nor its length leaks through timing.
 */
export function authMiddleware(token: string): ServerMiddleware {
  const expected = digest(token);
  return async function* authenticate<Request, Response>(
    call: Parameters<ServerMiddleware>[0] & { request: Request },
    context: CallContext,
  ) {
    if (!OPEN_SERVICES.some((prefix) => call.method.path.startsWith(prefix))) {
      const header = context.metadata.get("authorization");
      if (header === undefined) {
        throw new ServerError(Status.UNAUTHENTICATED, "missing token: send the metadata 'authorization: Bearer <token>'");
      }
      const presented = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
      if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
        throw new ServerError(Status.UNAUTHENTICATED, "wrong token: use the one in the server's data dir (file 'token')");
      }
    }
    return yield* call.next(call.request, context);
  } as ServerMiddleware;
}
