import type { Client as GrpcClient, Metadata as GrpcMetadata } from "@grpc/grpc-js";
import { WatchGraphRequest } from "@drover/shared";

const WATCH_GRAPH_PATH = "/drover.v1.DroverService/WatchGraph";

/** What the benchmark reads of one streamed event. */
export interface WatchedEvent {
  sequence: number;
  /** When the server committed it (milliseconds since the epoch). */
  time: number;
  /** The proto EventType number. */
  type: number;
}

export interface WatchHandlers {
  /** The snapshot message: the sequence it reflects and its size. */
  onSnapshot?: (sequence: number, bytes: number, receivedAt: number) => void;
  /** One message's events; `events` is empty unless decodeEvents is set. */
  onEvents?: (count: number, events: WatchedEvent[], receivedAt: number) => void;
  /** Read each event's sequence and time (otherwise events are only counted). */
  decodeEvents?: boolean;
}

export interface WatchOutcome {
  messages: number;
  bytes: number;
  events: number;
  lastSequence: number;
}

/**
 * Follows WatchGraph with a bare grpc-js client that reads only the fields the benchmark
 * needs (a snapshot's sequence; each event's sequence, time and type) straight from the
 * wire, so that a thousand watchers in one benchmark process measure the server rather
 * than the client's protobuf decoding. Resolves when the server ends the stream.
 */
export function rawWatchGraph(
  connection: { client: GrpcClient; metadata: GrpcMetadata },
  request: { graphId: string; group: string; afterSequence?: number },
  handlers: WatchHandlers = {},
  signal?: AbortSignal,
): Promise<WatchOutcome> {
  const outcome: WatchOutcome = { messages: 0, bytes: 0, events: 0, lastSequence: 0 };
  const call = connection.client.makeServerStreamRequest(
    WATCH_GRAPH_PATH,
    (value: WatchGraphRequest) => Buffer.from(WatchGraphRequest.encode(value).finish()),
    (bytes: Buffer) => bytes,
    WatchGraphRequest.fromPartial(request),
    connection.metadata,
  );
  signal?.addEventListener("abort", () => call.cancel(), { once: true });
  call.on("data", (message: Buffer) => {
    const receivedAt = Date.now();
    outcome.messages++;
    outcome.bytes += message.length;
    const events: WatchedEvent[] = [];
    let count = 0;
    forEachField(message, 0, message.length, (field, start, end) => {
      if (field === 1) handlers.onSnapshot?.(snapshotSequence(message, start, end), end - start, receivedAt);
      if (field !== 2) return;
      count++;
      if (handlers.decodeEvents) {
        const event = readEvent(message, start, end);
        events.push(event);
        outcome.lastSequence = event.sequence;
      }
    });
    outcome.events += count;
    if (count > 0) handlers.onEvents?.(count, events, receivedAt);
  });
  return new Promise((resolve, reject) => {
    call.on("error", reject);
    call.on("end", () => resolve(outcome));
  });
}

/** Calls `visit` with each length-delimited field between start and end; skips the others. */
function forEachField(buffer: Buffer, start: number, end: number, visit: (field: number, start: number, end: number, value: number) => void): void {
  let position = start;
  while (position < end) {
    const [tag, afterTag] = readVarint(buffer, position);
    const field = Math.floor(tag / 8);
    switch (tag % 8) {
      case 0: {
        const [value, next] = readVarint(buffer, afterTag);
        visit(field, afterTag, next, value);
        position = next;
        break;
      }
      case 1:
        position = afterTag + 8;
        break;
      case 2: {
        const [length, next] = readVarint(buffer, afterTag);
        visit(field, next, next + length, -1);
        position = next + length;
        break;
      }
      case 5:
        position = afterTag + 4;
        break;
      default:
        throw new Error(`unexpected protobuf wire type ${tag % 8} at byte ${position}`);
    }
  }
}

function readVarint(buffer: Buffer, position: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = buffer[position++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, position];
    scale *= 128;
  }
}

/** Graph.sequence (field 12) of a snapshot, without decoding its tasks. */
function snapshotSequence(buffer: Buffer, start: number, end: number): number {
  let sequence = 0;
  forEachField(buffer, start, end, (field, _start, _end, value) => {
    if (field === 12) sequence = value;
  });
  return sequence;
}

/** Event.sequence (1), Event.time (2, a Timestamp: seconds 1, nanos 2) and Event.type (3). */
function readEvent(buffer: Buffer, start: number, end: number): WatchedEvent {
  const event: WatchedEvent = { sequence: 0, time: 0, type: 0 };
  forEachField(buffer, start, end, (field, fieldStart, fieldEnd, value) => {
    if (field === 1) event.sequence = value;
    else if (field === 3) event.type = value;
    else if (field === 2) {
      let seconds = 0;
      let nanos = 0;
      forEachField(buffer, fieldStart, fieldEnd, (part, _start, _end, partValue) => {
        if (part === 1) seconds = partValue;
        else if (part === 2) nanos = partValue;
      });
      event.time = seconds * 1000 + Math.floor(nanos / 1e6);
    }
  });
  return event;
}
