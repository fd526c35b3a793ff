/**
 * How a streaming handler paces itself to its client. The transports (gRPC, and the HTTP
 * API's streams) accept a message without waiting for the client, so a handler that just
 * yields would pile its messages up in their write buffers when the client stops reading,
 * out of reach of the watcher's budget. Instead each streaming handler waits, before it
 * yields, until its outlet says the client has taken what it was sent but the message being
 * written: a stream then holds at most two messages its client has not read (that one and
 * the next), and a watcher that falls behind falls behind in its subscription, where the
 * budget counts it. Two, not one: the next message is made while the last one goes out.
 *
 * The transport also ends a stream that holds unread data for longer than the drain timeout
 * (it resets it, which frees what it held), whatever its handler is doing.
 */
export interface StreamOutlet {
  /**
   * Resolves once the client has taken every message sent on the stream so far (the
   * transport has written it to the connection) but the one being written: at once when
   * nothing else waits. Resolves early when `signal` aborts, and when the stream has ended.
   */
  drained(signal: AbortSignal): Promise<void>;
}

/** What streaming handlers get beside nice-grpc's call context. */
export interface StreamContext {
  outlet: StreamOutlet;
}

/** How long a stream may hold data its client does not read before it is ended. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** The outlet of a call that streams nothing (a unary call), or whose transport paces nothing: never waits. */
export const UNPACED: StreamOutlet = { drained: async () => {} };
