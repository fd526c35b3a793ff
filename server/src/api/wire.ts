import {
  BinaryWriter,
  DroverServiceDefinition,
  Event as ApiEvent,
  Graph as ApiGraph,
  Node as ApiNode,
  Task as ApiTask,
  ListNodesResponse,
  type MessageFns,
  SetSpecResponse,
  WatchGraphResponse,
  WatchNodesResponse,
} from "@drover/shared";
import type { Event } from "../domain.js";
import { toApiEvent } from "./convert.js";
import { tolerantDecoder } from "./requestDecoding.js";

/**
 * Watch streams send the same bytes to many watchers: a thousand watchers of one graph get
 * each committed event, and every watcher that starts within a moment gets the same snapshot
 * pages. This module makes each of those messages once and encodes it once:
 *
 * - `liveApiEvent` gives every watcher the same API object for a committed event, and its
 *   encoding is made with it;
 * - `sharedMessage` marks a whole response (a snapshot page) that several watchers send, so it
 *   is encoded the first time and copied after;
 * - `wireDefinition` is the service definition the gRPC server serves with: its watch methods'
 *   encoders use those encodings and otherwise encode as the generated code does. The
 *   handlers yield complete messages (typed as such), so the generated `fromPartial` copy of
 *   each response is skipped. Its request decoders never throw (see requestDecoding.ts).
 */

const eventBytes = new WeakMap<ApiEvent, Uint8Array>();
const liveEvents = new WeakMap<Event, ApiEvent>();
const messageBytes = new WeakMap<object, Uint8Array | null>();

/** The API form of a committed event, shared by every watcher it is sent to, encoded once. */
export function liveApiEvent(event: Event): ApiEvent {
  let api = liveEvents.get(event);
  if (!api) {
    api = toApiEvent(event);
    liveEvents.set(event, api);
    eventBytes.set(api, ApiEvent.encode(api).finish());
  }
  return api;
}

/** Marks a response that several streams send: it is encoded once, when first sent. */
export function sharedMessage<T extends object>(message: T): T {
  messageBytes.set(message, null);
  return message;
}

function encodeEvents(events: readonly ApiEvent[] | undefined, tag: number, writer: BinaryWriter): void {
  for (const event of events ?? []) {
    const bytes = eventBytes.get(event);
    if (bytes) writer.uint32(tag).bytes(bytes);
    else ApiEvent.encode(event, writer.uint32(tag).fork()).join();
  }
}

/**
 * A message of events only, every one of them already encoded (a live watch's usual message),
 * in one buffer of the exact size: a field tag, a length and the event's bytes each. Undefined
 * when some event has no encoding yet.
 */
function encodedEventsOnly(events: readonly ApiEvent[], tag: number): Uint8Array | undefined {
  let size = 0;
  for (const event of events) {
    const bytes = eventBytes.get(event);
    if (!bytes) return undefined;
    size += 1 + varintSize(bytes.length) + bytes.length;
  }
  const out = new Uint8Array(size);
  let pos = 0;
  for (const event of events) {
    const bytes = eventBytes.get(event)!;
    out[pos++] = tag;
    let length = bytes.length;
    while (length > 0x7f) {
      out[pos++] = (length & 0x7f) | 0x80;
      length >>>= 7;
    }
    out[pos++] = length;
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value >>>= 7;
    size++;
  }
  return size;
}

/** What the gRPC server needs of an encoder's result: its bytes. */
const written = (bytes: Uint8Array) => ({ finish: () => bytes }) as BinaryWriter;

/** Encodes with `encode` unless the message is shared and already encoded. */
function encodeOnce<T extends object>(message: T, writer: BinaryWriter, encode: (message: T, writer: BinaryWriter) => void): BinaryWriter {
  const cached = messageBytes.get(message);
  if (cached) return writer.raw(cached);
  if (cached === null) {
    const bytes = new BinaryWriter();
    encode(message, bytes);
    const encoded = bytes.finish();
    messageBytes.set(message, encoded);
    return writer.raw(encoded);
  }
  encode(message, writer);
  return writer;
}

const watchGraphWire: MessageFns<WatchGraphResponse> = {
  ...WatchGraphResponse,
  fromPartial: (message) => message as WatchGraphResponse,
  encode: (message, writer?: BinaryWriter) => {
    if (!writer && message.snapshot === undefined && !message.snapshotTasks?.length) {
      const bytes = encodedEventsOnly(message.events, 18);
      if (bytes) return written(bytes);
    }
    return encodeOnce(message, writer ?? new BinaryWriter(), (m, w) => {
      if (m.snapshot !== undefined) ApiGraph.encode(m.snapshot, w.uint32(10).fork()).join();
      encodeEvents(m.events, 18, w);
      for (const task of m.snapshotTasks ?? []) ApiTask.encode(task, w.uint32(26).fork()).join();
    });
  },
};

const watchNodesWire: MessageFns<WatchNodesResponse> = {
  ...WatchNodesResponse,
  fromPartial: (message) => message as WatchNodesResponse,
  encode: (message, writer?: BinaryWriter) => {
    if (!writer && !message.snapshot?.length && !message.sequence) {
      const bytes = encodedEventsOnly(message.events, 26);
      if (bytes) return written(bytes);
    }
    return encodeOnce(message, writer ?? new BinaryWriter(), (m, w) => {
      for (const node of m.snapshot ?? []) ApiNode.encode(node, w.uint32(10).fork()).join();
      if (m.sequence) w.uint32(16).uint64(m.sequence);
      encodeEvents(m.events, 26, w);
    });
  },
};

/**
 * SetSpec answers with the whole planned graph (200,001 tasks for a 100,000-node change); its
 * handler builds the complete message, so the generated deep copy of it is skipped.
 */
const setSpecWire: MessageFns<SetSpecResponse> = { ...SetSpecResponse, fromPartial: (message) => message as SetSpecResponse };

/** ListNodes answers with every node of a group (10,000 and more): the same. */
const listNodesWire: MessageFns<ListNodesResponse> = { ...ListNodesResponse, fromPartial: (message) => message as ListNodesResponse };

/** Every method with a request decoder that answers undecodable bytes instead of throwing. */
const methods = Object.fromEntries(
  Object.entries(DroverServiceDefinition.methods).map(([key, method]) => [
    key,
    { ...method, requestType: tolerantDecoder(method.requestType as MessageFns<unknown>, `drover.v1.${method.name}Request`) },
  ]),
) as unknown as typeof DroverServiceDefinition.methods;

/** The service definition served over gRPC: the generated one, with the decoders and the watch encoders above. */
export const wireDefinition: typeof DroverServiceDefinition = {
  ...DroverServiceDefinition,
  methods: {
    ...methods,
    setSpec: { ...methods.setSpec, responseType: setSpecWire },
    listNodes: { ...methods.listNodes, responseType: listNodesWire },
    watchGraph: { ...methods.watchGraph, responseType: watchGraphWire },
    watchNodes: { ...methods.watchNodes, responseType: watchNodesWire },
  },
};
