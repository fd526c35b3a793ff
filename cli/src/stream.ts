import { type Event, EventType, type Graph, isSettled, type Node, SnapshotAssembler } from "@drover/shared";
import { ClientError, Status } from "nice-grpc";
import type { Connection } from "./connection.js";
import { CliError, DeadlineError, ExitCode, isResumable, oneLine } from "./errors.js";
import { clientCommand } from "./hints.js";

/** How long a broken watch stream is retried before the client gives up. */
export const RESUME_WINDOW_MS = 30_000;
/** How long the server may take to send the snapshot a watch starts with. */
const SNAPSHOT_DEADLINE_MS = 10_000;
const FIRST_RETRY_DELAY_MS = 100;
const MAX_RETRY_DELAY_MS = 2_000;

export type WatchItem = { type: "snapshot"; graph: Graph } | { type: "event"; event: Event };

/** How a watch reconnects, and who hears of it; what every watch takes. */
export interface ResumeOptions {
  connection: Connection;
  /**
   * Start after this event, without a snapshot; undefined to start with a snapshot. With a
   * starting point the stream is resumed even when its very first call fails, since the
   * caller knows what it watches exists.
   */
  afterSequence?: number;
  resumeWindowMs?: number;
  /** Told once when a stream breaks and the client starts resuming it, and once when it has. */
  onBreak?: (reason: string, afterSequence: number) => void;
  onResume?: () => void;
  signal?: AbortSignal;
}

export interface WatchGraphOptions extends ResumeOptions {
  /** The graph to watch (its id, a prefix or its short form); empty for the group's latest graph. */
  graphId: string;
  group: string;
}

/** What one message of a watch stream gave: the items to yield, where the watch now stands, and whether it is over. */
interface WatchStep<Item> {
  items: Item[];
  /** The sequence number to resume after once the items are seen; undefined before the snapshot is whole. */
  cursor: number | undefined;
  /** The watch is over (the graph settled). */
  end: boolean;
}

interface ResumableWatch<Item> extends ResumeOptions {
  /**
   * Calls the stream, after `cursor` or (undefined) from its snapshot, and reads each of its
   * messages into a step; a message that completes nothing the caller sees (a page of a
   * snapshot) yields no step.
   */
  open(cursor: number | undefined, signal: AbortSignal): AsyncIterable<WatchStep<Item>>;
  /** What the client watched, for the line that says it gave up, and the command that watches it again. */
  lost(): { what: string; again: string };
}

/** The stream ended without the watch being over; treated like a break. */
class StreamEndedEarly extends Error {
  constructor() {
    super("the stream ended before the watch was over");
  }
}

const sleep = (milliseconds: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, milliseconds);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/**
 * Follows a watch stream: its snapshot (unless resuming), then each item exactly once, until a
 * step says the watch is over (never, for a watch that has no end). When the stream breaks
 * (the server restarts: UNAVAILABLE; or it cut a slow watcher off: RESOURCE_EXHAUSTED; or it
 * ended early), it calls again after the last event seen, backing off, for up to
 * `resumeWindowMs`, and then gives up with exit code 3.
 */
async function* resumableWatch<Item>(options: ResumableWatch<Item>): AsyncGenerator<Item, void> {
  const { connection } = options;
  const window = options.resumeWindowMs ?? RESUME_WINDOW_MS;
  let cursor = options.afterSequence;
  let brokenSince: number | undefined;
  let retryDelay = FIRST_RETRY_DELAY_MS;

  for (;;) {
    const attempt = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, attempt.signal]) : attempt.signal;
    // Only a fresh watch is owed an immediate answer (its snapshot); a resumed one may rightly wait.
    let snapshotTimer: NodeJS.Timeout | undefined;
    let snapshotLate = false;
    if (cursor === undefined) {
      snapshotTimer = setTimeout(() => {
        snapshotLate = true;
        attempt.abort();
      }, SNAPSHOT_DEADLINE_MS);
    }
    try {
      for await (const step of options.open(cursor, signal)) {
        clearTimeout(snapshotTimer);
        if (brokenSince !== undefined) {
          brokenSince = undefined;
          retryDelay = FIRST_RETRY_DELAY_MS;
          options.onResume?.();
        }
        cursor = step.cursor;
        yield* step.items;
        if (step.end) return;
      }
      throw new StreamEndedEarly();
    } catch (error) {
      clearTimeout(snapshotTimer);
      if (snapshotLate) throw new DeadlineError(connection.server, SNAPSHOT_DEADLINE_MS, { cause: error });
      if (options.signal?.aborted && isAbortError(error)) throw error;
      // A fresh watch that fails before its snapshot is an ordinary error (no such graph, no server).
      if (cursor === undefined) throw error;
      if (!(error instanceof StreamEndedEarly || isResumable(error))) throw error;
      const now = Date.now();
      if (brokenSince === undefined) {
        brokenSince = now;
        options.onBreak?.(breakReason(error), cursor);
      }
      if (now - brokenSince >= window) {
        const { what, again } = options.lost();
        throw new CliError(
          ExitCode.unavailable,
          `lost ${what} from server ${connection.server} and could not resume it within ${Math.round(window / 1000)}s (${breakReason(error)}): resume with '${clientCommand(again)}'`,
          { cause: error },
        );
      }
      await sleep(Math.min(retryDelay, window - (now - brokenSince)), options.signal);
      retryDelay = Math.min(retryDelay * 2, MAX_RETRY_DELAY_MS);
    } finally {
      clearTimeout(snapshotTimer);
    }
  }
}

/**
 * Follows one graph through WatchGraph (see resumableWatch): the snapshot (unless resuming),
 * then each of its task and graph events exactly once, in sequence order, until the graph settles.
 */
export function watchGraph(options: WatchGraphOptions): AsyncGenerator<WatchItem, void> {
  const { connection, group } = options;
  let graphId = options.graphId;
  return resumableWatch<WatchItem>({
    ...options,
    lost: () => ({ what: `the watch stream of graph ${graphId}`, again: `tasks watch ${graphId}` }),
    async *open(cursor, signal) {
      const stream = connection.client.watchGraph({ graphId, group, afterSequence: cursor }, { signal });
      const pages = new SnapshotAssembler();
      for await (const message of stream) {
        let snapshot: Graph | undefined;
        if (message.snapshot || pages.assembling) {
          snapshot = pages.add(message);
          if (!snapshot) continue;
        }
        const items: WatchItem[] = [];
        let end = false;
        if (snapshot) {
          // The graph the server found for an empty id or a prefix: its events are the ones to follow.
          graphId = snapshot.id;
          cursor = snapshot.sequence;
          items.push({ type: "snapshot", graph: snapshot });
          end = isSettled(snapshot.state);
        }
        for (const event of message.events) {
          // Node events of a resumed stream, and anything already seen, are not the task stream's.
          if (event.type === EventType.EVENT_TYPE_NODE || event.graphId !== graphId) continue;
          if (cursor !== undefined && event.sequence <= cursor) continue;
          cursor = event.sequence;
          items.push({ type: "event", event });
          if (event.type === EventType.EVENT_TYPE_GRAPH && isSettled(event.graphState)) end = true;
        }
        yield { items, cursor, end };
      }
    },
  });
}

export type NodeWatchItem = { type: "snapshot"; nodes: Node[]; sequence: number } | { type: "event"; event: Event };

export interface WatchNodesOptions extends ResumeOptions {
  group: string;
}

/**
 * Follows a group's nodes through WatchNodes (see resumableWatch): its live nodes (unless
 * resuming), then every node event exactly once, in sequence order. It has no end of its own:
 * the caller stops reading, or aborts `signal`.
 */
export function watchNodes(options: WatchNodesOptions): AsyncGenerator<NodeWatchItem, void> {
  const { connection, group } = options;
  return resumableWatch<NodeWatchItem>({
    ...options,
    lost: () => ({ what: `the node watch stream of group ${group}`, again: "nodes ls -w" }),
    async *open(cursor, signal) {
      for await (const message of connection.client.watchNodes({ group, afterSequence: cursor }, { signal })) {
        const items: NodeWatchItem[] = [];
        // Without a resume point the first message is the snapshot, even of no nodes.
        if (cursor === undefined) {
          cursor = message.sequence;
          items.push({ type: "snapshot", nodes: message.snapshot, sequence: message.sequence });
        }
        for (const event of message.events) {
          if (event.sequence <= cursor) continue;
          cursor = event.sequence;
          items.push({ type: "event", event });
        }
        yield { items, cursor, end: false };
      }
    },
  });
}

const isAbortError = (error: unknown) => error instanceof Error && error.name === "AbortError";

function breakReason(error: unknown): string {
  if (error instanceof ClientError) return `${Status[error.code]}: ${oneLine(error.details)}`;
  return error instanceof Error ? oneLine(error.message) : String(error);
}
