import swagger from "@fastify/swagger";
import type { FastifyInstance } from "fastify";

/** Where the document is served. */
export const OPENAPI_PATH = "/v1/openapi.json";

/**
 * The OpenAPI document of the HTTP API, made by @fastify/swagger from the routes themselves:
 * each route's method and path, and the JSON schemas fastify validates its query string and
 * body with (schemas.ts), so the document cannot say other than what the API checks. Routes
 * marked `hide` (the 405 answers to other methods) are not operations and are left out.
 *
 * It sees only the routes registered after it: register it first, and the routes in a plugin
 * registered after it (see HttpApi).
 */
export function describeRoutes(app: FastifyInstance): void {
  void app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Drover HTTP API",
        version: "v1",
        description:
          "The gRPC service drover.v1.DroverService over HTTP: bodies and responses in the proto JSON mapping (fields in " +
          "lowerCamelCase; the .proto's snake_case names are accepted too), errors as " +
          '{"error": {"code": "NOT_FOUND", "message": "…"}} with the HTTP status of their gRPC code. See the README.',
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "the token in the server's data dir (file 'token')" } } },
      security: [{ bearer: [] }],
    },
    transform: ({ schema, url }) => ({ schema: schema && (withoutSnakeCaseTwins(structuredClone(schema)) as typeof schema), url }),
  });
}

/**
 * A schema without the snake_case twin of each lowerCamelCase field: the API takes both, as
 * proto JSON allows (the document's description says so), and listing both would double every
 * body in the document.
 */
function withoutSnakeCaseTwins(schema: unknown): unknown {
  if (Array.isArray(schema)) {
    for (const item of schema) withoutSnakeCaseTwins(item);
  } else if (typeof schema === "object" && schema !== null) {
    const properties = (schema as { properties?: Record<string, unknown> }).properties;
    if (properties) {
      for (const name of Object.keys(properties)) {
        const camel = name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
        if (camel !== name && Object.hasOwn(properties, camel)) delete properties[name];
      }
    }
    for (const value of Object.values(schema)) withoutSnakeCaseTwins(value);
  }
  return schema;
}

/** Serves the document at OPENAPI_PATH (with the token, as every path under /v1/). */
export function serveOpenApi(app: FastifyInstance): void {
  app.get(OPENAPI_PATH, { schema: { summary: "OpenAPI", description: "this document", produces: ["application/json"] } }, async () => app.swagger());
}
