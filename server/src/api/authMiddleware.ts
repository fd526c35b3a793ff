import { createHash, timingSafeEqual } from "node:crypto";
import { type CallContext, type ServerMiddleware, ServerError, Status } from "nice-grpc";

/** Calls anyone may make: a load balancer's health probe carries no token. */
const OPEN_SERVICES = ["/grpc.health.v1.Health/"];

export const WRONG_TOKEN_MESSAGE = "wrong token: use the one in the server's data dir (file 'token')";

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * Checks an authorization value (`Bearer <token>`) against the token: "missing" when there
 * is none, "wrong" when it is not `Bearer` and the token. Tokens are compared as SHA-256
 * digests with a constant-time comparison, so neither the token's content nor its length
 * leaks through timing. The gRPC and the HTTP API both use it.
 */
export function tokenChecker(token: string): (authorization: string | undefined) => "ok" | "missing" | "wrong" {
  const expected = digest(token);
  return (authorization) => {
    if (authorization === undefined) return "missing";
    const presented = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
    return presented !== undefined && timingSafeEqual(digest(presented), expected) ? "ok" : "wrong";
  };
}

/** Lets a call through only with `authorization: Bearer <token>` metadata (see `tokenChecker`). */
export function authMiddleware(token: string): ServerMiddleware {
  const check = tokenChecker(token);
  return async function* authenticate<Request, Response>(
    call: Parameters<ServerMiddleware>[0] & { request: Request },
    context: CallContext,
  ) {
    if (!OPEN_SERVICES.some((prefix) => call.method.path.startsWith(prefix))) {
      const result = check(context.metadata.get("authorization"));
      if (result === "missing") {
        throw new ServerError(Status.UNAUTHENTICATED, "missing token: send the metadata 'authorization: Bearer <token>'");
      }
      if (result === "wrong") throw new ServerError(Status.UNAUTHENTICATED, WRONG_TOKEN_MESSAGE);
    }
    return yield* call.next(call.request, context);
  } as ServerMiddleware;
}
