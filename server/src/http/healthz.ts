import type { FastifyInstance } from "fastify";
import { answerOtherMethods } from "./methodNotAllowed.js";

/**
 * `GET /healthz` on the HTTP listener, as Kubernetes serves it: 200 `ok`, or 503 with the reason
 * while the server cannot serve (the database cannot be written). It needs no token, since a
 * load balancer's or kubelet's probe carries none (the gRPC health service is open for the same
 * reason); web pages are still refused, as on every path of this listener.
 */
export function registerHealthz(app: FastifyInstance, problem: () => string | undefined): void {
  app.get(
    "/healthz",
    {
      config: { open: true },
      schema: { summary: "Health", description: "200 ok, or 503 with the reason the server cannot serve; needs no token", security: [], produces: ["text/plain"] },
    },
    async (_request, reply) => {
      const reason = problem();
      reply.type("text/plain; charset=utf-8");
      return reason === undefined ? "ok" : reply.code(503).send(`${reason}\n`);
    },
  );
  answerOtherMethods(app, new Map([["/healthz", ["GET"]]]), { open: true });
}

/** Whether a route was registered with `config: { open: true }`: served without the token. */
export function isOpenRoute(config: unknown): boolean {
  return (config as { open?: unknown } | undefined)?.open === true;
}
