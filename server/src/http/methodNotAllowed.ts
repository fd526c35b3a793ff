import type { FastifyInstance, FastifyRequest, HTTPMethods } from "fastify";
import { Status } from "nice-grpc";
import { apiError, HttpRequestError, sendError } from "./httpErrors.js";

/** The methods a path of the API may be asked with; others (TRACE, PROPFIND…) get the 404 of an unknown route. */
export const METHODS: HTTPMethods[] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * Answers every other method on each of the API's paths with 405 and an `Allow` header
 * naming the methods it takes (RFC 9110 §15.5.6), instead of the 404 of a path that is not
 * there. `routes` maps each route's URL pattern to its methods; `config` is the routes' (open:
 * served without the token, as the paths they answer for are).
 *
 * A path whose last part names a custom method the pattern does not have
 * (`POST /v1/graphs/{id}:explode` matches `GET /v1/graphs/{id}`) is still an unknown route: 404.
 */
export function answerOtherMethods(app: FastifyInstance, routes: ReadonlyMap<string, readonly string[]>, config: { open?: boolean } = {}): void {
  for (const [url, allowed] of routes) {
    const others = METHODS.filter((method) => !allowed.includes(method));
    const allow = allowed.join(", ");
    app.route({
      method: others,
      url,
      config,
      // Not an operation of the API: the OpenAPI document leaves it out.
      schema: { hide: true },
      handler: async (request, reply) => {
        const path = request.url.split("?")[0]!;
        if (!url.includes("::") && /:[^/]*$/.test(path)) throw unknownRoute(request);
        reply.header("allow", allow);
        return sendError(reply, { ...apiError(Status.UNIMPLEMENTED, `method ${request.method} is not allowed on ${path}: it takes ${allowed.join(" or ")}`), httpStatus: 405 });
      },
    });
  }
}

/** The 404 of a request no route matches. */
export function unknownRoute(request: FastifyRequest): HttpRequestError {
  return new HttpRequestError(Status.NOT_FOUND, `no route ${request.method} ${request.url.split("?")[0]}: the API's routes are under /v1/ (see the README)`);
}
