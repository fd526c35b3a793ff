import { type Event, EventType, type Graph, isSettled, SnapshotAssembler } from "@drover/shared";
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

export interface WatchGraphOptions {
  connection: Connection;
  /** The graph to watch; empty for the group's latest graph. */
  graphId: string;
  group: string;
  /**
   * Start after this event, without a snapshot; undefined to start with a snapshot. With a
   * starting point the stream is resumed even when its very first call fails, since the
   * caller knows the graph exists.
   */
  afterSequence?: number;
  resumeWindowMs?: number;
  /** Told once when a stream breaks and the client starts resuming it, and once when it has. */
  onBreak?: (reason: string, afterSequence: number) => void;
  onResume?: () => void;
  signal?: AbortSignal;
}

/** The stream ended without the graph settling; treated like a break. */
class StreamEndedEarly extends Error {
  constructor() {
    super("the stream ended before the graph settled");
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
 * Follows one graph through WatchGraph: the snapshot (unless resuming), then each of its task
 * and graph events exactly once, in sequence order, until the graph settles. When the stream
 * breaks (the server restarts: UNAVAILABLE; or it cut a slow watcher off: RESOURCE_EXHAUSTED),
 * it calls again with after_sequence = the last event seen, backing off, for up to
 * `resumeWindowMs`, and then gives up with exit code 3.
 */
export async function* watchGraph(options: WatchGraphOptions): AsyncGenerator<WatchItem, void> {
  const { connection, group } = options;
  const window = options.resumeWindowMs ?? RESUME_WINDOW_MS;
  let graphId = options.graphId;
  let cursor = options.afterSequence;
  let settled = false;
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
      const stream = connection.client.watchGraph({ graphId, group, afterSequence: cursor }, { signal });
      const pages = new SnapshotAssembler();
      for await (const message of stream) {
        if (message.snapshot || pages.assembling) {
          const snapshot = pages.add(message);
          if (!snapshot) continue;
          message.snapshot = snapshot;
        }
        clearTimeout(snapshotTimer);
        if (brokenSince !== undefined) {
          brokenSince = undefined;
          retryDelay = FIRST_RETRY_DELAY_MS;
          options.onResume?.();
        }
        if (message.snapshot) {
          graphId = message.snapshot.id;
          cursor = message.snapshot.sequence;
          yield { type: "snapshot", graph: message.snapshot };
          if (isSettled(message.snapshot.state)) settled = true;
        }
        for (const event of message.events) {
          // Node events of a resumed stream, and anything already seen, are not the task stream's.
          if (event.type === EventType.EVENT_TYPE_NODE || event.graphId !== graphId) continue;
          if (cursor !== undefined && event.sequence <= cursor) continue;
          cursor = event.sequence;
          yield { type: "event", event };
          if (event.type === EventType.EVENT_TYPE_GRAPH && isSettled(event.graphState)) settled = true;
        }
        if (settled) return;
      }
      if (settled) return;
      throw new StreamEndedEarly();
    } catch (error) {
      clearTimeout(snapshotTimer);
      if (settled) return;
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
        throw new CliError(
          ExitCode.unavailable,
          `lost the watch stream of graph ${graphId} from server ${connection.server} and could not resume it within ${Math.round(window / 1000)}s (${breakReason(error)}): resume with '${clientCommand(`tasks watch ${graphId}`)}'`,
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

const isAbortError = (error: unknown) => error instanceof Error && error.name === "AbortError";

function breakReason(error: unknown): string {
  if (error instanceof ClientError) return `${Status[error.code]}: ${oneLine(error.details)}`;
  return error instanceof Error ? oneLine(error.message) : String(error);
}
