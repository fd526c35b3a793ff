import type { onRequestAsyncHookHandler } from "fastify";
import { Status } from "nice-grpc";
import { tokenChecker, WRONG_TOKEN_MESSAGE } from "../api/authMiddleware.js";
import { isOpenRoute } from "./healthz.js";
import { HttpRequestError } from "./httpErrors.js";

/**
 * Lets a request through only with `Authorization: Bearer <token>`, the gRPC API's token,
 * checked the same way (constant time). Refused: 401 with `WWW-Authenticate: Bearer`. An
 * open route (`/healthz`) needs none.
 */
export function authHook(token: string): onRequestAsyncHookHandler {
  const check = tokenChecker(token);
  return async (request) => {
    if (isOpenRoute(request.routeOptions.config)) return;
    const result = check(request.headers.authorization);
    if (result === "missing") {
      throw new HttpRequestError(Status.UNAUTHENTICATED, "missing token: send the header 'Authorization: Bearer <token>'");
    }
    if (result === "wrong") throw new HttpRequestError(Status.UNAUTHENTICATED, WRONG_TOKEN_MESSAGE);
  };
}
