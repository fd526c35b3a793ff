import { setImmediate as nextTurn } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { Store } from "./Store.js";

/** A week: a weekend's incident can still be read on Monday (Nomad keeps finished jobs 4h, Kubernetes events 1h). */
export const DEFAULT_RETENTION_MS = 7 * 24 * 3_600_000;
/** How often retention runs. Each run deletes what expired since the last, so runs stay short. */
export const DEFAULT_RETENTION_INTERVAL_MS = 10 * 60_000;
/**
 * Rows per step (one transaction). Measured (`DROVER_BENCH_ONLY=retention make bench`, 2 busy
 * shared cores, 1,000,750 events): a run takes 5–6 s whatever the step; steps of 2,000 rows
 * hold the event loop a median 9 ms, p99 25 ms; of 5,000, a median 23 ms and up to 185 ms.
 */
export const DEFAULT_RETENTION_BATCH = 2_000;
/** Free pages given back per step: 1,024 pages of 4 KiB (4 MiB), about as long as a step of rows. */
const RELEASE_PAGES = 1_024;

export interface RetentionOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** How long what settled is kept; 0 keeps everything. */
  retentionMs: number;
  intervalMs?: number;
  batchRows?: number;
  /** Told what each run deleted (for metrics). */
  onRun?: (report: RetentionReport) => void;
  /** Where nodes' files are kept (the driver); absent: nodes have none. */
  nodeFiles?: NodeFiles;
}

/**
 * Whoever keeps files of nodes beside their rows: the driver, with logs and working dirs. The
 * store never touches them; retention says whose rows it deleted once that is committed.
 */
export interface NodeFiles {
  /** Ids of nodes it keeps files of and neither runs nor starts. */
  nodesWithFiles(): Promise<string[]>;
  /** Removes the files of these nodes, except any it runs or starts; resolves with whose it removed, never rejects. */
  removeNodeFiles(nodeIds: readonly string[]): Promise<string[]>;
}

/** What one run deleted, and how long its longest step held the event loop. */
export interface RetentionReport {
  events: number;
  tasks: number;
  graphs: number;
  nodes: number;
  /** Nodes whose files (logs, working dir) were removed: those deleted now, and any deleted before that still had some. */
  nodeFiles: number;
  /** Free pages given back to the file system (0 for a database without incremental auto-vacuum). */
  releasedPages: number;
  /** Free pages left in the file, which new rows reuse. */
  freePages: number;
  steps: number;
  longestStepMs: number;
  tookMs: number;
}

/**
 * Retention: bounded disk use. What a settled graph leaves behind expires once it settled
 * longer ago than the retention:
 *
 * - its events are deleted (compacted). A kept graph keeps its row and tasks, so `graphs show`,
 *   `history` and a watch starting from a snapshot still answer; a watch resuming into the
 *   deleted stretch is refused with OUT_OF_RANGE (see EventsCompactedError), never given a gap.
 * - the graph itself (row and tasks) is deleted unless it is its group's newest graph or the
 *   newest rollout graph of its revision. Revisions are never deleted (rollback targets them),
 *   so each keeps the one graph that says how its rollout went: a group keeps one graph per
 *   revision, as many as it had updates, while heals, operations and superseded rollouts go.
 * - node events older than the retention are deleted, whoever's they are (Kubernetes'
 *   event TTL); a node's row is its current state.
 * - stopped nodes are deleted once stopped longer ago than the retention, and then, once that
 *   is committed, their files (logs, rotated ones included, and what is left of their working
 *   dirs; see NodeFiles). A crash between the two leaves files the database no longer knows:
 *   each run also removes those of nodes the driver keeps files of and the store has no row
 *   of. Live nodes, and anything of an unsettled graph, are never touched.
 *
 * Each run walks the log and the graphs in steps of `batchRows` rows, one short transaction
 * each, and lets the event loop run between steps. After deleting it gives free pages back to
 * the file system when the database allows it (see openSqliteStore); otherwise SQLite reuses
 * them for new rows, and the file stops growing instead of shrinking.
 */
export class Retention {
  private readonly intervalMs: number;
  private readonly batchRows: number;

  constructor(private readonly options: RetentionOptions) {
    this.intervalMs = options.intervalMs ?? DEFAULT_RETENTION_INTERVAL_MS;
    this.batchRows = options.batchRows ?? DEFAULT_RETENTION_BATCH;
  }

  /** Runs every interval until the signal aborts; a failed run is logged and tried again next time. */
  async runPeriodically(signal: AbortSignal): Promise<void> {
    if (this.options.retentionMs <= 0) return;
    const { clock, logger } = this.options;
    while (!signal.aborted) {
      try {
        await clock.sleep(this.intervalMs, signal);
      } catch {
        return;
      }
      try {
        await this.run(signal);
      } catch (error) {
        if (signal.aborted) return;
        logger.error({ err: error }, "retention failed: expired events and graphs stay until the next run");
      }
    }
  }

  /** One run: deletes everything that expired, step by step; stops early when the signal aborts. */
  async run(signal?: AbortSignal): Promise<RetentionReport> {
    const { store, clock, logger, retentionMs } = this.options;
    const now = clock.now();
    const cutoff = now - retentionMs;
    const report: RetentionReport = { events: 0, tasks: 0, graphs: 0, nodes: 0, nodeFiles: 0, releasedPages: 0, freePages: 0, steps: 0, longestStepMs: 0, tookMs: 0 };
    const began = performance.now();
    const step = async <T>(work: () => Promise<T>): Promise<T | undefined> => {
      if (signal?.aborted) return undefined;
      const start = performance.now();
      const result = await work();
      report.longestStepMs = Math.max(report.longestStepMs, performance.now() - start);
      report.steps++;
      // Watchers and commits go first.
      await nextTurn();
      return result;
    };

    // Events first: the graphs that expire next then have none left to leave behind.
    let afterSequence: number | undefined = 0;
    while (afterSequence !== undefined) {
      const done = await step(() => store.compactEvents({ cutoff, now }, afterSequence!, this.batchRows));
      if (!done) break;
      report.events += done.deleted;
      afterSequence = done.next;
    }
    let afterGraph: string | undefined = "";
    while (afterGraph !== undefined) {
      const done = await step(() => store.expireGraphs(cutoff, afterGraph!, this.batchRows));
      if (!done) break;
      report.tasks += done.tasks;
      report.graphs += done.graphs;
      afterGraph = done.next;
    }
    for (;;) {
      const deleted = await step(() => store.expireStoppedNodes(cutoff, this.batchRows));
      if (deleted === undefined) break;
      report.nodes += deleted.length;
      // The rows are gone (committed): now their files. A crash here leaves only files, found below next time.
      report.nodeFiles += await this.removeNodeFiles(deleted);
      if (deleted.length < this.batchRows) break;
    }
    report.nodeFiles += await this.removeFilesOfForgottenNodes(step);
    const deletedAny = report.events + report.tasks + report.graphs + report.nodes > 0;
    if (deletedAny) {
      for (;;) {
        const released = await step(() => store.releaseFreePages(RELEASE_PAGES));
        if (!released) break;
        report.releasedPages += released.released;
        report.freePages = released.free;
        if (released.released === 0 || released.free === 0) break;
      }
    }
    report.tookMs = performance.now() - began;
    const fields = { ...report, longestStepMs: Math.round(report.longestStepMs), tookMs: Math.round(report.tookMs), retentionMs };
    if (deletedAny || report.nodeFiles > 0) {
      // A database made before incremental auto-vacuum keeps its free pages: the file stops growing but does not shrink.
      const kept = report.releasedPages === 0 && report.freePages > 0;
      logger.info(fields, `retention deleted what settled before the retention period${kept ? "; new rows will reuse the freed pages" : ""}`);
    } else {
      logger.debug(fields, "retention found nothing to delete");
    }
    this.options.onRun?.(report);
    return report;
  }

  /** Has the driver remove the files of nodes whose rows are deleted; returns of how many. */
  private async removeNodeFiles(nodeIds: readonly string[]): Promise<number> {
    const { nodeFiles } = this.options;
    if (!nodeFiles || nodeIds.length === 0) return 0;
    return (await nodeFiles.removeNodeFiles(nodeIds)).length;
  }

  /**
   * Removes the files of nodes the store has no row of: deleted by a run that stopped before it
   * removed their files (a crash), or by a version that kept them. The store is asked a step's
   * worth of ids at a time. A node id is a fresh ULID whose row is committed before the driver
   * makes any file of it, so a file the store does not know is never a starting node's.
   */
  private async removeFilesOfForgottenNodes(step: <T>(work: () => Promise<T>) => Promise<T | undefined>): Promise<number> {
    const { nodeFiles, store } = this.options;
    if (!nodeFiles) return 0;
    const withFiles = await nodeFiles.nodesWithFiles();
    let removed = 0;
    for (let start = 0; start < withFiles.length; start += this.batchRows) {
      const unknown = await step(() => store.unknownNodeIds(withFiles.slice(start, start + this.batchRows)));
      if (unknown === undefined) break;
      removed += await this.removeNodeFiles(unknown);
    }
    return removed;
  }
}
