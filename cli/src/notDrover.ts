import { connect } from "node:net";
import { ClientError, Status } from "nice-grpc";
import type { GlobalOptions } from "./connection.js";
import { CliError, ExitCode } from "./errors.js";

/** How long the HTTP/1 probe below may take: it runs only after a connection failed. */
const PROBE_TIMEOUT_MS = 2_000;
/** The largest response the client takes (see connection.ts): a length prefix above it is not gRPC's. */
const LARGEST_RESPONSE_BYTES = 256 * 1024 * 1024;

const WHERE = "Drover's gRPC API is on the server's --listen address (127.0.0.1:8888 by default): check --server";

/**
 * What to say instead of "unreachable" or a protocol error when --server names something that
 * answers but is not Drover's gRPC API: an HTTP/1 server (Drover's own HTTP API port, a web
 * server, a proxy that does not speak HTTP/2), an HTTP/2 server or proxy that answers with a
 * plain HTTP status, or a gRPC server without Drover's service. Each exits 3, like a server that
 * cannot be reached: the server the user meant was not reached. Undefined for anything else.
 */
export async function notDrover(error: unknown, globals: Pick<GlobalOptions, "server">): Promise<CliError | undefined> {
  if (!(error instanceof ClientError)) return undefined;
  const { server } = globals;
  const fail = (what: string) => new CliError(ExitCode.unavailable, `server ${server} ${what}; ${WHERE}`, { cause: error });
  // grpc-js turns the HTTP status of an answer that is not gRPC into one of several codes (404: UNIMPLEMENTED, 503: UNAVAILABLE, 401: UNAUTHENTICATED…).
  const httpStatus = /Received HTTP status code (\d+)/.exec(error.details)?.[1];
  if (httpStatus) {
    const proxy = /^50[234]$/.test(httpStatus) ? "a proxy whose backend is down, or not Drover's gRPC port" : "it is not Drover's gRPC port (an HTTP/2 server, or a proxy whose backend is not Drover?)";
    return fail(`answered HTTP status ${httpStatus}, not gRPC: ${proxy}`);
  }
  if (error.code === Status.UNAVAILABLE && /Protocol error/i.test(error.details)) {
    const http1 = await http1Version(server);
    return fail(
      http1
        ? `speaks HTTP/${http1}, not gRPC: it is not Drover's gRPC port (Drover's HTTP API, --http-listen, or a web server?)`
        : "does not speak gRPC (HTTP/2): it is not Drover's gRPC port",
    );
  }
  if (error.code === Status.UNIMPLEMENTED) {
    const method = error.path.replace(/^\//, "");
    return fail(`does not implement ${method}: it is a gRPC server but not Drover, or a Drover server older than this client`);
  }
  const length = /Received message larger than max \((\d+) vs/.exec(error.details)?.[1];
  if (error.code === Status.RESOURCE_EXHAUSTED && length && Number(length) > LARGEST_RESPONSE_BYTES) {
    return fail("answered with something that is not gRPC: it is not Drover's gRPC port (an HTTP/2 server?)");
  }
  return undefined;
}

/** `1.1` when host:port answers a plain HTTP/1 request, else undefined. */
function http1Version(server: string): Promise<string | undefined> {
  const separator = server.lastIndexOf(":");
  const host = server.slice(0, separator).replace(/^\[|\]$/g, "");
  return new Promise((resolve) => {
    const socket = connect({ host, port: Number(server.slice(separator + 1)), timeout: PROBE_TIMEOUT_MS });
    let answer = "";
    const done = (version: string | undefined) => {
      socket.destroy();
      resolve(version);
    };
    socket.once("connect", () => socket.write(`HEAD / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
      if (answer.length >= 9 || answer.includes("\n")) done(/^HTTP\/(1\.[01]) /.exec(answer)?.[1]);
    });
    socket.once("end", () => done(/^HTTP\/(1\.[01]) /.exec(answer)?.[1]));
    socket.once("error", () => done(undefined));
    socket.once("timeout", () => done(undefined));
  });
}
