import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Registry } from "prom-client";
import { tokenChecker } from "../api/authMiddleware.js";
import { foreignRequestProblem, listenHost } from "../auth/foreignRequest.js";
import { isLoopback } from "../auth/tokens.js";

export interface MetricsEndpointOptions {
  /** The server's token: what a scrape of a non-loopback address must carry. */
  token?: string;
  /** The server's certificate and key: what a non-loopback address is served with. */
  tls?: { cert: Buffer; key: Buffer };
}

/**
 * Why metrics cannot be served on this address with these options, or undefined. The loopback
 * rule, as for the APIs: on a loopback address metrics are plain HTTP without a token (what a
 * local Prometheus or node agent expects); on any other they need the server's token as a
 * bearer header (Prometheus: `authorization: {credentials_file: <data dir>/token}`) and TLS
 * with the server's certificate, since that token lets its holder change every group.
 */
export function metricsListenProblem(address: string, served: { withToken: boolean; withTls: boolean }): string | undefined {
  if (isLoopback(address)) return undefined;
  if (!served.withToken) {
    return `--metrics-listen ${address} is refused with --insecure-no-auth: off loopback, a scrape must carry the server's token, and there is none (serve metrics on 127.0.0.1, or drop --insecure-no-auth)`;
  }
  if (!served.withTls) {
    return `--metrics-listen ${address} needs --tls-cert and --tls-key: off loopback, a scrape carries the server's token, which must not cross the network in plaintext (or serve metrics on 127.0.0.1)`;
  }
  return undefined;
}

/** Serves the registry's metrics at /metrics on the address, by the loopback rule above. */
export async function serveMetrics(registry: Registry, address: string, options: MetricsEndpointOptions): Promise<Server> {
  const problem = metricsListenProblem(address, { withToken: Boolean(options.token), withTls: Boolean(options.tls) });
  if (problem) throw new Error(problem);
  const loopback = isLoopback(address);
  const check = !loopback && options.token ? tokenChecker(options.token) : undefined;
  const answer = (response: ServerResponse, status: number, text: string, headers: Record<string, string> = {}) =>
    response.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers }).end(`${text}\n`);

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    // Without a token, a DNS-rebinding page could read group names and counts (see foreignRequest.ts).
    const foreign = foreignRequestProblem(request.headers, { tls: !loopback, checkHost: loopback ? { listenHost: listenHost(address) } : undefined });
    if (foreign) return answer(response, 403, foreign);
    if (check) {
      const result = check(request.headers.authorization);
      if (result !== "ok") {
        const why = result === "missing" ? "missing token" : "wrong token";
        return answer(response, 401, `${why}: off loopback, metrics need 'Authorization: Bearer <token>' with the token in the server's data dir (Prometheus: authorization: {credentials_file: …/token})`, {
          "www-authenticate": 'Bearer realm="drover-metrics"',
        });
      }
    }
    if (request.url !== "/metrics") return answer(response, 404, "not found: metrics are at /metrics");
    if (request.method !== "GET") return answer(response, 405, `method ${request.method} is not allowed on /metrics: it takes GET`, { allow: "GET" });
    registry.metrics().then(
      (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: Error) => answer(response, 500, `metrics failed: ${error.message}`),
    );
  };

  const server = loopback || !options.tls ? createServer(handle) : createTlsServer({ cert: options.tls.cert, key: options.tls.key }, handle);
  const separator = address.lastIndexOf(":");
  server.listen(Number(address.slice(separator + 1)), address.slice(0, separator).replace(/^\[|\]$/g, ""));
  await once(server, "listening");
  return server;
}
