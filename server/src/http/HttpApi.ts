import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { DroverServiceImplementation } from "@drover/shared";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { type CallContext, Metadata, Status } from "nice-grpc";
import type { Logger } from "pino";
import { foreignRequestProblem, listenHost } from "../auth/foreignRequest.js";
import { DEFAULT_DRAIN_TIMEOUT_MS, type StreamContext } from "../api/StreamOutlet.js";
import type { ConnectionGate } from "../net/ConnectionGate.js";
import { authHook } from "./authHook.js";
import { apiErrorOf, BODY_LIMIT_BYTES, HttpRequestError, JSON_TYPE, MERGE_PATCH_TYPE, sendError, writeClientError } from "./httpErrors.js";
import { METHODS, unknownRoute } from "./methodNotAllowed.js";
import { registerHealthz } from "./healthz.js";
import { describeRoutes, serveOpenApi } from "./openApi.js";
import { registerRoutes } from "./routes.js";
import { validationMessage } from "./schemas.js";
import { ServiceCaller } from "./ServiceCaller.js";
import { ResponseOutlet, type StreamFormat, type StreamOptions } from "./streams.js";

export interface HttpApiOptions {
  /** The gRPC service's handlers: the HTTP API calls the very same ones. */
  service: DroverServiceImplementation<StreamContext>;
  logger: Logger;
  /** The bearer token every request must carry; absent: no authentication. */
  token?: string;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Limits the port's connections (how many, and how long a new one may take to send its first request). */
  gate?: ConnectionGate;
  /** How long a streamed response may stay over its buffer, its client not reading, before it is cut (default 30 s). */
  drainTimeoutMs?: number;
  /** Told when a streamed response is cut for that. */
  onStreamStalled?: () => void;
  /** Why the server cannot serve now (its database cannot be written), or undefined: what `GET /healthz` answers. */
  health?: () => string | undefined;
  /** Told of every request once its response is done (or its client gone), refusals included: for the metrics. */
  onAnswered?: (answered: { method: string; route: string; status: number }) => void;
}

/** The route label of a request that matched none. */
const NO_ROUTE = "none";
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);
/** A route's pattern as its paths read: without its parameters' patterns, a custom method's `::` as `:`. */
const routeLabel = (url: string) => url.replace(/\([^)]*\)/g, "").replaceAll("::", ":");

/** How long open streams may take to end once the API closes, before their connections are cut. */
const CLOSE_GRACE_MS = 2000;

/**
 * The HTTP/JSON API beside gRPC, for curl and scripts: the same operations under `/v1/`
 * (see routes.ts), bodies and responses in the proto JSON mapping, the same token, the
 * same validation, and errors as `{"error": {"code": "NOT_FOUND", "message": "…"}}` with
 * the HTTP status of their gRPC code (see httpErrors.ts). Beside them: `GET /healthz` for
 * probes (healthz.ts), and the API's OpenAPI document at `/v1/openapi.json` (openApi.ts).
 *
 * Lifecycle: created → listening → closed. Closing refuses new requests (503), ends open
 * streams with an error that says where to resume, and waits for them to finish.
 */
export class HttpApi {
  readonly app: FastifyInstance;
  private readonly closing = new AbortController();
  private readonly logger: Logger;
  /** Open connections, each with how many of its requests are unanswered: the rest are cut at once on close. */
  private readonly connections = new Map<Socket, number>();
  /** The host of the address it listens on, once it does: a Host it accepts without a token. */
  private listenHost = "127.0.0.1";
  private readonly outlets = new WeakMap<FastifyRequest, ResponseOutlet>();

  constructor(private readonly options: HttpApiOptions) {
    this.logger = options.logger.child({ component: "http" });
    const logger = this.logger;
    this.app = Fastify({
      // Node answers an HTTP/1.1 request without Host with a bare 400 of its own; the hook below answers it.
      ...(options.tls
        ? { https: { cert: options.tls.cert, key: options.tls.key, requireHostHeader: false, ...(options.gate && { handshakeTimeout: options.gate.handshakeTimeoutMs }) } }
        : { http: { requireHostHeader: false } }),
      logger: false,
      // A HEAD of a watch would hold a stream open to send nothing.
      exposeHeadRoutes: false,
      bodyLimit: BODY_LIMIT_BYTES,
      // Requests during a shutdown get this API's own 503, in its own JSON shape.
      return503OnClosing: false,
      ajv: { customOptions: { removeAdditional: false, coerceTypes: "array", allErrors: false, verbose: true } },
      schemaErrorFormatter: (errors, part) => new Error(validationMessage(errors, part)),
      // fastify's own refusals (a bad URL encoding, an overlong path part) and Node's (not HTTP,
      // headers too large) in this API's JSON error shape too.
      frameworkErrors: (error, request, reply) => sendError(reply, apiErrorOf(error, request, logger)),
      clientErrorHandler: writeClientError,
    }) as unknown as FastifyInstance;

    // JSON only, with the parser's own words for what is wrong; an empty body is no body.
    this.app.removeAllContentTypeParsers();
    this.app.addContentTypeParser([JSON_TYPE, MERGE_PATCH_TYPE], { parseAs: "string" }, (_request, text, done) => {
      if (text === "") return done(null, undefined);
      try {
        done(null, JSON.parse(text as string));
      } catch (error) {
        done(new HttpRequestError(Status.INVALID_ARGUMENT, `the body is not valid JSON: ${(error as Error).message}`), undefined);
      }
    });

    if (options.onAnswered) this.reportAnswers(options.onAnswered);
    this.trackConnections(options.tls ? "secureConnection" : "connection");
    if (options.gate) this.gateConnections(options.gate);
    this.app.addHook("onRequest", async () => {
      if (this.closing.signal.aborted) throw new HttpRequestError(Status.UNAVAILABLE, "the server is shutting down: retry once it is back");
    });
    // Before the token: an HTTP/1.1 request without Host, and a web page's request whatever it
    // carries (see foreignRequest.ts).
    this.app.addHook("onRequest", async (request) => {
      if (request.headers.host === undefined && request.raw.httpVersion === "1.1") {
        throw new HttpRequestError(Status.INVALID_ARGUMENT, "the request has no Host header, which HTTP/1.1 requires: send it with curl or an HTTP library");
      }
      const problem = foreignRequestProblem(request.headers, { tls: Boolean(options.tls), checkHost: options.token ? undefined : { listenHost: this.listenHost } });
      if (problem) throw new HttpRequestError(Status.PERMISSION_DENIED, problem);
    });
    if (options.token) this.app.addHook("onRequest", authHook(options.token));
    this.app.addHook("onResponse", async (request, reply) => {
      logger.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, "http request");
    });
    this.app.setErrorHandler((error, request, reply) => sendError(reply, apiErrorOf(error, request, logger)));
    this.app.setNotFoundHandler((request, reply) => sendError(reply, apiErrorOf(unknownRoute(request), request, logger)));

    const caller = new ServiceCaller(options.service, options.logger);
    // The routes go in a plugin registered after the OpenAPI one, which then sees them all.
    describeRoutes(this.app);
    void this.app.register(async (api) => {
      registerHealthz(api, () => options.health?.());
      registerRoutes(api, {
        caller,
        callContext: (request, reply) => this.callContext(request, reply),
        streamOptions: (request, format, signal) => this.streamOptions(request, format, signal),
      });
      serveOpenApi(api);
    });
  }

  /** Starts serving on `host:port` (port 0: any free one) and returns the port. */
  async listen(address: string): Promise<number> {
    const separator = address.lastIndexOf(":");
    const host = address.slice(0, separator).replace(/^\[|\]$/g, "");
    this.listenHost = listenHost(address);
    try {
      await this.app.listen({ host, port: Number(address.slice(separator + 1)) });
    } catch (error) {
      if ((error as { code?: string }).code === "EADDRINUSE") {
        throw new Error(`HTTP listen address ${address} is in use: stop the other server or choose another --http-listen`, { cause: error });
      }
      throw error;
    }
    return (this.app.server.address() as AddressInfo).port;
  }

  /** Ends open streams, stops listening, and waits (a little) for open requests to finish. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    // A connection with no request unanswered (idle between requests, or whose stream has just
    // ended) is closed at once rather than after its keep-alive timeout.
    const closeIdle = () => {
      for (const [socket, unanswered] of this.connections) if (unanswered === 0) socket.destroy();
    };
    const idle = setInterval(closeIdle, 20);
    closeIdle();
    const timer = setTimeout(() => this.app.server.closeAllConnections(), CLOSE_GRACE_MS);
    try {
      await this.app.close();
    } finally {
      clearInterval(idle);
      clearTimeout(timer);
    }
  }

  /**
   * Reports each request when its response closes: also one that fastify refused before routing
   * (a bad URL encoding), and a stream whose client went away. Labelled with the route's pattern,
   * never its URL, and only the methods the API knows, so that no client can grow the series.
   */
  private reportAnswers(onAnswered: NonNullable<HttpApiOptions["onAnswered"]>): void {
    const routes = new WeakMap<IncomingMessage, string>();
    // The first hook: a request refused by the ones after it (the token, a foreign page) keeps its route.
    this.app.addHook("onRequest", async (request) => {
      routes.set(request.raw, request.routeOptions.url === undefined ? NO_ROUTE : routeLabel(request.routeOptions.url));
    });
    this.app.server.on("request", (request: IncomingMessage, response: ServerResponse) => {
      response.once("close", () => {
        const method = KNOWN_METHODS.has(request.method ?? "") ? request.method! : "other";
        onAnswered({ method, route: routes.get(request) ?? NO_ROUTE, status: response.statusCode });
      });
    });
  }

  /** Keeps count of each connection's unanswered requests, so that closing can cut the others at once. */
  private trackConnections(event: "connection" | "secureConnection"): void {
    this.app.server.on(event, (socket: Socket) => {
      this.connections.set(socket, 0);
      socket.once("close", () => this.connections.delete(socket));
    });
    this.app.addHook("onRequest", async (request, reply) => {
      const socket = request.raw.socket;
      if (!this.connections.has(socket)) return;
      this.connections.set(socket, this.connections.get(socket)! + 1);
      reply.raw.once("close", () => {
        if (this.connections.has(socket)) this.connections.set(socket, this.connections.get(socket)! - 1);
      });
    });
  }

  /**
   * Counts every new connection (the raw TCP one, under TLS too) against the port's limit, and
   * gives it until the gate's handshake timeout to send its first request.
   */
  private gateConnections(gate: ConnectionGate): void {
    this.app.server.on("connection", (socket: Socket) => gate.admit(socket));
    this.app.addHook("onRequest", async (request) => {
      gate.handshake(request.raw.socket, () => true);
    });
  }

  /**
   * The context a gRPC handler gets: its signal is aborted when the client goes away (the
   * response closes before it is finished) or the API closes; no metadata is passed on. Its
   * outlet paces a streamed response (see ResponseOutlet).
   */
  private callContext(request: FastifyRequest, reply: FastifyReply): CallContext & StreamContext {
    const controller = new AbortController();
    const abort = () => controller.abort();
    const closing = this.closing.signal;
    closing.addEventListener("abort", abort, { once: true });
    reply.raw.once("close", () => {
      closing.removeEventListener("abort", abort);
      abort();
    });
    const outlet = new ResponseOutlet({
      drainTimeoutMs: this.options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      cut: () => reply.raw.destroy(),
      onStalled: this.options.onStreamStalled,
    });
    this.outlets.set(request, outlet);
    return {
      outlet,
      signal: controller.signal,
      metadata: Metadata(),
      peer: `${request.ip}:${request.socket.remotePort ?? 0}`,
      header: Metadata(),
      trailer: Metadata(),
      sendHeader() {},
    };
  }

  private streamOptions(request: FastifyRequest, format: StreamFormat, signal: AbortSignal): StreamOptions {
    const outlet = this.outlets.get(request);
    if (!outlet) throw new Error("streamOptions() before callContext(): a stream's outlet comes with its call context");
    return { format, signal, outlet, closing: this.closing.signal, describeError: (error) => apiErrorOf(error, request, this.logger) };
  }
}
