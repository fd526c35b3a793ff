import type { NodeStats, NodeTemplate } from "../domain.js";

/** What a driver needs to know of a node: nothing of graphs or tasks. */
export interface NodeHandle {
  id: string;
  group: string;
  version: number;
  /** Memory the node may use, in MiB, where the driver can enforce it; absent or 0: no limit. */
  memoryMb?: number;
  /** The spec revision whose template the node runs; absent: the group's current one. */
  revision?: number;
}

/** A running node that died (failed) or keeps failing its health check (unhealthy), not by a stop. */
export interface NodeFailure {
  state: "failed" | "unhealthy";
  reason: string;
  /** How the process ended, when the driver knows: "exited with code 1", "killed by SIGKILL". */
  exitStatus?: string;
}

export type NodeFailureListener = (node: NodeHandle, failure: NodeFailure) => void;

/**
 * Starts and stops nodes. Every call is idempotent: starting a node that already runs,
 * or stopping one that is already gone, succeeds without doing it twice. Every call
 * stops early, rejecting with an AbortError, when its signal aborts.
 */
export interface Driver {
  readonly name: string;
  /** The machine the driver's nodes run on. */
  readonly host: string;
  start(node: NodeHandle, signal: AbortSignal): Promise<void>;
  stop(node: NodeHandle, signal: AbortSignal): Promise<void>;
  /**
   * Whether a node the store says is running still is. After a server restart this is how
   * the server re-adopts the nodes an earlier server started.
   */
  inspect(node: NodeHandle, signal: AbortSignal): Promise<"running" | "stopped">;
  /** Tells the listener about every running node that dies or turns unhealthy on its own. */
  onNodeFailure(listener: NodeFailureListener): void;
  /**
   * What the driver still has of nodes not in `keep` (the live nodes the store knows): node
   * processes a crash left behind, or that a database which does not know them found.
   */
  strays(keep: ReadonlySet<string>): Promise<StrayNode[]>;
  /** Stops whatever the driver still runs for these nodes, and forgets them; returns their ids. */
  sweep(nodeIds: readonly string[]): Promise<string[]>;
  /**
   * Ids of the nodes the driver keeps files of (logs, what is left of working dirs) but neither
   * runs nor starts: stopped nodes, and nodes whose rows retention deleted before their files went.
   */
  nodesWithFiles(): Promise<string[]>;
  /**
   * Removes what the driver keeps on disk of these nodes, whose rows retention deleted: their
   * logs, rotated ones included, and what is left of their working dirs. A node the driver runs
   * or starts keeps everything. Resolves with the ids it removed files of; never rejects (a
   * file it could not remove is logged, and asked for again on retention's next run).
   */
  removeNodeFiles(nodeIds: readonly string[]): Promise<string[]>;
  /** Stops background work (crash simulation, health checks); nodes keep running. */
  close(): void;
  /** Makes a running node fail abruptly, as a crash would; returns whether it was running. */
  kill(node: NodeHandle): Promise<boolean>;
  /** What the OS says of the node, for drivers that run real processes. */
  stats(node: NodeHandle): NodeStats | undefined;
  /** The file the node's output goes to, for drivers that keep one. */
  logFile(node: NodeHandle): string | undefined;
  /**
   * Why the driver would refuse to run a template's command (one the server's
   * `--allow-commands` does not allow, or an env that would make an allowed one load other
   * code), for a template being set; undefined when it would run it. Absent when the driver
   * runs any command, so that callers need not find the template.
   */
  readonly commandProblem?: (group: string, template: NodeTemplate, version?: number) => string | undefined;
  /**
   * For drivers that give each node a port of its own from a range: the range, and how many
   * of its ports nodes of groups other than `group` hold now (admission counts ports like cpu).
   */
  portUse?(group: string): PortUse;
}

/** A driver's ports: its range, inclusive, and how many of them other groups' nodes hold. */
export interface PortUse {
  first: number;
  last: number;
  heldByOtherGroups: number;
}

/** What a driver still has of a node the store holds no live node for. */
export interface StrayNode {
  id: string;
  group: string;
  /** Whether its process still runs; one that does not is only a record to forget. */
  running: boolean;
  /** Its process, for drivers that run real ones. */
  pid?: number;
}

/** A driver call failed; the task that made it may try again. */
export class DriverError extends Error {
  constructor(
    message: string,
    readonly retryable = true,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DriverError";
  }
}
