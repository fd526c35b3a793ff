/** What a driver needs to know of a node: nothing of graphs or tasks. */
export interface NodeHandle {
  id: string;
  group: string;
  version: number;
}

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
  inspect(node: NodeHandle, signal: AbortSignal): Promise<"running" | "stopped" | "unknown">;
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
