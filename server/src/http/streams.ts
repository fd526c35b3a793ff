import { once } from "node:events";
import { PassThrough } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Status } from "nice-grpc";
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

export interface StreamOptions {
  format: StreamFormat;
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
  void pump(body, first, batches, options);
  return reply;
}

async function pump(
  body: PassThrough,
  first: Promise<IteratorResult<StreamItem[] | string, void>>,
  batches: AsyncIterator<StreamItem[] | string, void>,
  options: StreamOptions,
) {
  const { format, signal } = options;
  let lastId: number | undefined;
  const write = async (text: string) => {
    if (text === "" || body.destroyed || signal.aborted) return;
    if (!body.write(text)) await once(body, "drain", { signal });
  };
  const heartbeat = format === "sse" ? setInterval(() => void write(": keep-alive\n\n").catch(() => {}), HEARTBEAT_MS) : undefined;
  try {
    for (let next = await first; !next.done; next = await batches.next()) {
      if (typeof next.value === "string") {
        await write(next.value);
        continue;
      }
      for (const item of next.value) {
        await write(encode(item, format));
        lastId = item.id;
      }
    }
    if (options.closing.aborted) {
      // The service saw its call cancelled and ended quietly; the client must know to come back.
      const resume = lastId === undefined ? "" : `: resume after sequence ${lastId}`;
      writeFinal(body, encodeError(apiError(Status.UNAVAILABLE, `the server is shutting down${resume}`), format));
    } else if (format === "sse") {
      await write("event: end\ndata: {}\n\n");
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
