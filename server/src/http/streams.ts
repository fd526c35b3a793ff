import { once } from "node:events";
import { PassThrough, type Writable } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Status } from "nice-grpc";
import type { StreamOutlet } from "../api/StreamOutlet.js";
import { type ApiError, apiError, errorBody } from "./httpErrors.js";

/**
 * Streamed responses (graph and node watches, node logs). A watch is sent as server-sent
 * events when the client accepts `text/event-stream`:
 *
 *     id: 42
 *     event: snapshot | event
 *     data: {…}
 *
 * ending with `event: end` when the stream ends on its own (the graph settled), or
 * `event: error` with `{"error": {…}}`. Otherwise as JSON lines (`application/x-ndjson`):
 * `{"snapshot": …}`, `{"event": …}`, …, or a last `{"error": {…}}`. An item's id is the
 * sequence number of the last event it reflects: send it back as `Last-Event-ID` (or
 * `?after=`) to resume with nothing lost or repeated.
 *
 * A stream is paced by its handler (see StreamOutlet): each message is written to the
 * response at once, and the handler sends the next only once the response has drained. A
 * response that stays over its buffer (its client does not read) for the drain timeout is cut.
 */

export interface StreamItem {
  kind: "snapshot" | "event";
  /** The sequence number to resume after. */
  id: number;
  data: unknown;
}

export type StreamFormat = "sse" | "ndjson" | "text";

const CONTENT_TYPE: Record<StreamFormat, string> = {
  sse: "text/event-stream; charset=utf-8",
  ndjson: "application/x-ndjson; charset=utf-8",
  text: "text/plain; charset=utf-8",
};

/** Keeps proxies from closing an idle event stream. */
const HEARTBEAT_MS = 15_000;
/**
 * How long the first message may take before the headers go out anyway. A refused request
 * (invalid, not found) fails well within it and gets its HTTP status; a resumed watch with
 * nothing new yet gets its 200 at once instead of waiting for the next event.
 */
const FIRST_MESSAGE_WAIT_MS = 250;

export function watchFormat(request: FastifyRequest): "sse" | "ndjson" {
  return /\btext\/event-stream\b/i.test(request.headers.accept ?? "") ? "sse" : "ndjson";
}

function encode(item: StreamItem, format: StreamFormat): string {
  if (format === "sse") return `id: ${item.id}\nevent: ${item.kind}\ndata: ${JSON.stringify(item.data)}\n\n`;
  return `${JSON.stringify({ [item.kind]: item.data })}\n`;
}

function encodeError(error: ApiError, format: StreamFormat): string {
  if (format === "sse") return `event: error\ndata: ${JSON.stringify(errorBody(error))}\n\n`;
  if (format === "ndjson") return `${JSON.stringify(errorBody(error))}\n`;
  return "";
}

/** The pieces a message is written to the response in: the stall clock sees each one go out. */
const WRITE_CHUNK_BYTES = 64 * 1024;

/**
 * The HTTP side of a stream's pacing (see StreamOutlet). A message is written to the
 * response body, which pipes it to the response: the stream is drained when neither is over
 * its buffer (16 KiB each, then the socket's), so what the client has not read is at most the
 * last message and those buffers. When the stream stays backed up for the drain timeout with
 * nothing of it written to the socket meanwhile, the response is cut: a client on a slow link
 * that reads a large snapshot for minutes is not.
 */
export class ResponseOutlet implements StreamOutlet {
  private body: PassThrough | undefined;
  private response: Writable | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  /** What the stream held unwritten when the stall clock last started. */
  private pendingAtClockStart = 0;

  constructor(
    private readonly options: {
      drainTimeoutMs: number;
      /** Ends the response at once, whatever it holds (destroys its socket). */
      cut: () => void;
      onStalled?: () => void;
    },
  ) {}

  /** The body the stream's messages are written to, once the response (its headers sent) pipes it. */
  attach(body: PassThrough, response: Writable): void {
    this.body = body;
    this.response = response;
    body.on("drain", this.check);
    response.on("drain", this.check);
    response.once("close", () => clearTimeout(this.stallTimer));
  }

  /** Writes to the body at once; the handler waits for it to drain before it sends more. */
  write(text: string): void {
    const body = this.body;
    if (text === "" || !body || body.destroyed) return;
    if (text.length <= WRITE_CHUNK_BYTES / 4) {
      body.write(text);
    } else {
      // In bytes: a string cut between the two halves of a surrogate pair would not survive.
      const bytes = Buffer.from(text);
      for (let start = 0; start < bytes.length; start += WRITE_CHUNK_BYTES) body.write(bytes.subarray(start, start + WRITE_CHUNK_BYTES));
    }
    this.check();
  }

  async drained(signal: AbortSignal): Promise<void> {
    for (let waiting = this.backedUp(); waiting && !signal.aborted; waiting = this.backedUp()) {
      // The stall clock runs for as long as the handler waits. The body's drain can come while
      // the response is not yet over its buffer (the clock stops), and the response fill up
      // right after with no event to start it again: the handler then waited for good.
      this.check();
      // A response that closes first (the client left, or it was cut) aborts the call's signal.
      await once(waiting, "drain", { signal }).catch(() => {});
    }
  }

  /** Whichever of the body and the response is over its buffer (the one to wait on). */
  private backedUp(): Writable | undefined {
    const { body, response } = this;
    if (!body || !response || body.destroyed || response.destroyed) return undefined;
    return body.writableNeedDrain ? body : response.writableNeedDrain ? response : undefined;
  }

  /** Bytes written to the stream that its socket has not yet taken. */
  private pending(): number {
    return (this.body?.writableLength ?? 0) + (this.response?.writableLength ?? 0);
  }

  /** The clock runs while the stream is backed up. */
  private readonly check = () => {
    if (!this.backedUp()) {
      clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
      return;
    }
    if (this.stallTimer) return;
    this.pendingAtClockStart = this.pending();
    this.stallTimer = setTimeout(this.stalled, this.options.drainTimeoutMs);
  };

  private readonly stalled = () => {
    this.stallTimer = undefined;
    if (!this.backedUp()) return;
    if (this.pending() < this.pendingAtClockStart) {
      // Slow, not stalled: some of it went out.
      this.check();
      return;
    }
    // A body already ended had told its client how the stream ended; cutting it only frees it.
    if (!this.body!.writableEnded) this.options.onStalled?.();
    this.options.cut();
  };
}

export interface StreamOptions {
  format: StreamFormat;
  /** The stream's outlet: what its handler waits on, and what writes to the response. */
  outlet: ResponseOutlet;
  /** The call's signal: aborted when the client goes away or the HTTP API closes. */
  signal: AbortSignal;
  /** Aborted when the HTTP API closes. */
  closing: AbortSignal;
  /** What the client is told of an error in the middle of the stream. */
  describeError: (error: unknown) => ApiError;
}

/**
 * Sends a stream of item batches (or, in the text format, of text). A failure before the
 * first batch is thrown, so that the client gets it as an HTTP status; a stream that ends
 * with nothing to send answers 204 (which also tells an EventSource not to reconnect);
 * later failures are sent in the stream.
 */
export async function sendStream(
  reply: FastifyReply,
  batches: AsyncIterator<StreamItem[] | string, void>,
  options: StreamOptions,
): Promise<FastifyReply> {
  const first = batches.next();
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([first, new Promise<"pending">((resolve) => (timer = setTimeout(resolve, FIRST_MESSAGE_WAIT_MS, "pending")))]);
  clearTimeout(timer);
  if (waited !== "pending" && waited.done) return reply.code(204).send();
  const body = new PassThrough();
  reply
    .code(200)
    .header("content-type", CONTENT_TYPE[options.format])
    .header("cache-control", "no-cache")
    .header("x-accel-buffering", "no")
    .send(body);
  options.outlet.attach(body, reply.raw);
  void pump(body, first, batches, options);
  return reply;
}

async function pump(
  body: PassThrough,
  first: Promise<IteratorResult<StreamItem[] | string, void>>,
  batches: AsyncIterator<StreamItem[] | string, void>,
  options: StreamOptions,
) {
  const { format, signal, outlet } = options;
  let lastId: number | undefined;
  // Never waits: the handler waits for the body to drain before it sends more (see ResponseOutlet).
  const write = (text: string) => {
    if (!signal.aborted) outlet.write(text);
  };
  const heartbeat = format === "sse" ? setInterval(() => write(": keep-alive\n\n"), HEARTBEAT_MS) : undefined;
  try {
    for (let next = await first; !next.done; next = await batches.next()) {
      if (typeof next.value === "string") {
        write(next.value);
        continue;
      }
      for (const item of next.value) {
        write(encode(item, format));
        lastId = item.id;
      }
    }
    if (options.closing.aborted) {
      // The service saw its call cancelled and ended quietly; the client must know to come back.
      const resume = lastId === undefined ? "" : `: resume after sequence ${lastId}`;
      writeFinal(body, encodeError(apiError(Status.UNAVAILABLE, `the server is shutting down${resume}`), format));
    } else if (format === "sse") {
      write("event: end\ndata: {}\n\n");
    }
  } catch (error) {
    if (!signal.aborted || options.closing.aborted) writeFinal(body, encodeError(options.describeError(error), format));
  } finally {
    clearInterval(heartbeat);
    body.end();
    // Ends the service's stream if the client left first, so that it lets go of its subscription.
    await batches.return?.().catch(() => {});
  }
}

/** Writes a last message even while the call's signal is aborted (a shutdown), unless the client is gone. */
function writeFinal(body: PassThrough, text: string) {
  if (text !== "" && !body.destroyed) body.write(text);
}
