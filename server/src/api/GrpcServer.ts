import { once } from "node:events";
import { createRequire } from "node:module";
import { type AddressInfo, createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { type ConnectionInjector, Server as GrpcJsServer, ServerCredentials, type UntypedHandleCall, type UntypedServiceImplementation } from "@grpc/grpc-js";
import type { CallContext, CompatServiceDefinition, ServerMiddleware, ServiceImplementation } from "nice-grpc";
import type { ConnectionGate } from "../net/ConnectionGate.js";
import { GrpcOutlets } from "./GrpcOutlets.js";
import { type StreamContext, UNPACED } from "./StreamOutlet.js";

/** The HTTP/2 connection preface a client sends first ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"). */
const PREFACE_BYTES = 24;

export interface GrpcServerOptions {
  /** Every call goes through it, outermost first (composed with nice-grpc's composeServerMiddleware). */
  middleware: ServerMiddleware;
  gate: ConnectionGate;
  outlets: GrpcOutlets;
  /** HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** A connection with no call for this long is closed (grpc-js sends GOAWAY; clients reconnect when they need to). */
  idleTimeoutMs: number;
  /** Serve over TLS with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
}

/**
 * nice-grpc's server (the same handlers, middleware and service definitions), listening
 * through a ConnectionGate: grpc-js binds its own listening socket and offers no limit on
 * connections nor a timeout on a connection's handshake, so this server accepts connections
 * itself, terminates TLS itself, and hands each connection to grpc-js (its public
 * `createConnectionInjector`). Each response stream's handler also gets its outlet in its
 * context (see StreamOutlet).
 *
 * nice-grpc's `createServer` creates the grpc-js server inside `listen` and keeps it, so this
 * builds the handlers with nice-grpc's own factories (its internal modules: watcherLimits.test.ts
 * fails if an upgrade moves them).
 */
export class GrpcServer {
  private readonly services: { definition: CompatServiceDefinition; implementation: object }[] = [];
  private grpc: GrpcJsServer | undefined;
  private listener: NetServer | undefined;

  constructor(private readonly options: GrpcServerOptions) {}

  add<Service extends CompatServiceDefinition>(definition: Service, implementation: ServiceImplementation<Service, StreamContext>): void {
    if (this.grpc) throw new Error("GrpcServer.add() must be called before listen()");
    this.services.push({ definition, implementation });
  }

  /** Starts serving on `host:port` (port 0: any free one) and returns the port. */
  async listen(address: string): Promise<number> {
    if (this.grpc) throw new Error("GrpcServer.listen() has already been called");
    const { gate, outlets, tls } = this.options;
    this.grpc = new GrpcJsServer({
      "grpc.max_concurrent_streams": this.options.maxConcurrentStreams,
      "grpc.max_connection_idle_ms": this.options.idleTimeoutMs,
      interceptors: [outlets.interceptor],
    });
    for (const { definition, implementation } of this.services) {
      const normalized = niceGrpc.normalizeServiceDefinition(definition);
      this.grpc.addService(niceGrpc.toGrpcJsServiceDefinition(normalized), this.handlers(normalized, implementation));
    }
    const injector = this.grpc.createConnectionInjector(ServerCredentials.createInsecure());
    const accept = tls ? this.terminatingTls(injector, tls) : (socket: Socket) => this.inject(injector, socket);
    const listener = createNetServer((socket) => {
      if (gate.admit(socket)) accept(socket);
    });
    this.listener = listener;
    const separator = address.lastIndexOf(":");
    listener.listen({ host: address.slice(0, separator).replace(/^\[|\]$/g, ""), port: Number(address.slice(separator + 1)) });
    await once(listener, "listening");
    return (listener.address() as AddressInfo).port;
  }

  /** Stops accepting connections and waits for open calls to finish. */
  async shutdown(): Promise<void> {
    this.listener?.close();
    this.options.gate.closeHandshaking();
    const grpc = this.grpc;
    if (grpc) await new Promise<void>((resolve) => grpc.tryShutdown(() => resolve()));
  }

  /** Cuts every connection. */
  forceShutdown(): void {
    this.listener?.close();
    this.options.gate.closeHandshaking();
    this.grpc?.forceShutdown();
  }

  /** Hands a plaintext connection to grpc-js; its handshake is done once the preface is in. */
  private inject(injector: ConnectionInjector, socket: Socket | TLSSocket): void {
    this.options.gate.handshake(socket, () => socket.bytesRead >= PREFACE_BYTES);
    injector.injectConnection(socket);
  }

  /**
   * TLS on this side of grpc-js, as its own secure server would do it (ALPN h2), by a TLS server
   * that does not listen: it is given each connection, and gives back the decrypted socket.
   */
  private terminatingTls(injector: ConnectionInjector, tls: { cert: Buffer; key: Buffer }): (socket: Socket) => void {
    const terminator = createTlsServer(
      { cert: tls.cert, key: tls.key, ALPNProtocols: ["h2"], handshakeTimeout: this.options.gate.handshakeTimeoutMs },
      (secured) => this.inject(injector, secured),
    );
    terminator.on("tlsClientError", (_error, socket) => socket.destroy());
    return (socket) => terminator.emit("connection", socket);
  }

  /** nice-grpc's handlers of a service; each call's implementation gets its stream's outlet in its context. */
  private handlers(definition: NiceServiceDefinition, implementation: object): UntypedServiceImplementation {
    const { middleware, outlets } = this.options;
    const handlers: UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(definition)) {
      const implement = (implementation as Record<string, MethodImplementation>)[name]!.bind(implementation);
      const factory = niceGrpc.handlerFactory(method);
      if (method.responseStream) {
        // A handler per call, to give the call's implementation its outlet.
        handlers[name] = ((call: Parameters<GrpcOutlets["outletOf"]>[0]) => {
          const outlet = outlets.outletOf(call) ?? UNPACED;
          const handler = factory(method, (request, context) => implement(request, { ...context, outlet }), middleware) as (call: unknown) => void;
          handler(call);
        }) as UntypedHandleCall;
      } else {
        handlers[name] = factory(method, (request, context) => implement(request, { ...context, outlet: UNPACED }), middleware);
      }
    }
    return handlers;
  }
}

type MethodImplementation = (request: unknown, context: CallContext & StreamContext) => unknown;
interface NiceMethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}
type NiceServiceDefinition = Record<string, NiceMethodDefinition>;
type HandlerFactory = (
  definition: NiceMethodDefinition,
  implementation: (request: unknown, context: CallContext) => unknown,
  middleware?: ServerMiddleware,
) => UntypedHandleCall;

/** The parts of nice-grpc's server that its `createServer` uses and does not export. */
const niceGrpc = (() => {
  const require = createRequire(import.meta.url);
  const load = <T>(module: string, name: string): T => {
    const value = (require(`nice-grpc/lib/${module}.js`) as Record<string, unknown>)[name];
    if (typeof value !== "function") throw new Error(`nice-grpc no longer has ${name} in lib/${module}.js: GrpcServer must follow its createServer`);
    return value as T;
  };
  const unary = load<HandlerFactory>("server/handleUnaryCall", "createUnaryMethodHandler");
  const serverStreaming = load<HandlerFactory>("server/handleServerStreamingCall", "createServerStreamingMethodHandler");
  const clientStreaming = load<HandlerFactory>("server/handleClientStreamingCall", "createClientStreamingMethodHandler");
  const bidiStreaming = load<HandlerFactory>("server/handleBidiStreamingCall", "createBidiStreamingMethodHandler");
  return {
    normalizeServiceDefinition: load<(definition: CompatServiceDefinition) => NiceServiceDefinition>("service-definitions/index", "normalizeServiceDefinition"),
    toGrpcJsServiceDefinition: load<(definition: NiceServiceDefinition) => Parameters<GrpcJsServer["addService"]>[0]>(
      "service-definitions/index",
      "toGrpcJsServiceDefinition",
    ),
    handlerFactory(method: NiceMethodDefinition): HandlerFactory {
      if (method.requestStream) return method.responseStream ? bidiStreaming : clientStreaming;
      return method.responseStream ? serverStreaming : unary;
    },
  };
})();
