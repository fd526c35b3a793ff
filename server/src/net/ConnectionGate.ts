import type { Socket } from "node:net";
import type { Logger } from "pino";

/**
 * Connections each listening port keeps open at once, by default: twice the thousand watchers,
 * each on its own connection, that the benchmark serves (see BENCHMARKS.md).
 */
export const DEFAULT_MAX_CONNECTIONS = 2048;
/** How long a new connection has, by default, to complete its handshake (see ConnectionGate). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** How often, at most, refused connections are logged (with how many there were). */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

export type ConnectionClosedReason = "limit" | "handshake";

export interface ConnectionGateOptions {
  /** The port's name in log lines and metrics: "gRPC" or "HTTP". */
  name: string;
  maxConnections: number;
  handshakeTimeoutMs: number;
  logger: Logger;
  /** Told of each connection the gate closes, and why. */
  onClosed?: (reason: ConnectionClosedReason) => void;
}

interface Connection {
  socket: Socket;
  /** Whether it completed its handshake; until told how to tell, it has not. */
  handshaken: () => boolean;
  timer: NodeJS.Timeout;
}

/**
 * Keeps a listening port from being held by connections that do nothing: at most
 * `maxConnections` are open at once (one more is closed as it arrives, and the refusals are
 * logged), and each must complete its handshake within `handshakeTimeoutMs` or it is closed.
 * The handshake is what the protocol needs before its first call: TLS if the port has it,
 * then the HTTP/2 connection preface (gRPC) or a first request's headers (HTTP). A connection
 * that then idles is the protocol's to close (grpc-js's idle timeout, HTTP's keep-alive timeout).
 *
 * A connection is known by its peer address (`host:port`), which is unique among one port's
 * connections, so that a TLS socket made on top of one finds it.
 */
export class ConnectionGate {
  private readonly connections = new Map<string, Connection>();
  private refusedSinceLog = 0;
  private lastRefusalLog = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: ConnectionGateOptions) {}

  get handshakeTimeoutMs(): number {
    return this.options.handshakeTimeoutMs;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** Counts a new connection in; when the port is full, closes it instead and returns false. */
  admit(socket: Socket): boolean {
    // The protocol's own error handling starts later (or never, for a connection closed here):
    // a reset before that must not be an uncaught error.
    socket.on("error", () => {});
    if (this.connections.size >= this.options.maxConnections) {
      socket.destroy();
      this.refused();
      return false;
    }
    const key = peerOf(socket);
    const connection: Connection = {
      socket,
      handshaken: () => false,
      timer: setTimeout(() => {
        if (connection.handshaken()) return;
        this.options.logger.debug({ port: this.options.name, peer: key }, "closed a connection that did not complete its handshake in time");
        socket.destroy();
        this.options.onClosed?.("handshake");
      }, this.options.handshakeTimeoutMs),
    };
    connection.timer.unref();
    this.connections.set(key, connection);
    socket.once("close", () => {
      clearTimeout(connection.timer);
      if (this.connections.get(key) === connection) this.connections.delete(key);
    });
    return true;
  }

  /** Says how to tell that the connection from this peer (its socket, or one made on top of it) completed its handshake. */
  handshake(peer: Pick<Socket, "remoteAddress" | "remotePort">, done: () => boolean): void {
    const connection = this.connections.get(peerOf(peer));
    if (connection) connection.handshaken = done;
  }

  /** Closes the connections still in their handshake: they hold no call for a shutdown to wait for. */
  closeHandshaking(): void {
    for (const connection of this.connections.values()) if (!connection.handshaken()) connection.socket.destroy();
  }

  private refused(): void {
    this.refusedSinceLog++;
    this.options.onClosed?.("limit");
    const now = Date.now();
    if (now - this.lastRefusalLog < REFUSAL_LOG_INTERVAL_MS) return;
    this.options.logger.warn(
      { port: this.options.name, refused: this.refusedSinceLog, open: this.connections.size, limit: this.options.maxConnections },
      `refused connections to the ${this.options.name} port: it has its limit of ${this.options.maxConnections} open (--max-connections); raise the limit, or find the clients that hold them`,
    );
    this.refusedSinceLog = 0;
    this.lastRefusalLog = now;
  }
}

/** A connection's peer as `host:port` (the form grpc-js gives calls as their peer). */
export function peerOf(socket: Pick<Socket, "remoteAddress" | "remotePort">): string {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}
