import { formatBytes } from "@drover/shared";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import { StorageFaultError, UnavailableError } from "../errors.js";
import type { StorageFault, Store } from "../store/Store.js";

export interface StorageHealthOptions {
  /** The store, unguarded or guarded: its faults come back through `reportFault` either way. */
  store: Store;
  clock: Clock;
  logger: Logger;
  /** Free space the database's file system must keep, in bytes: below it new work is refused. 0: no margin. */
  minFreeBytes: number;
  /** How often a write is probed and free space read, in milliseconds (a fifth of it while a fault holds). */
  probeIntervalMs: number;
  /** Told whenever the server turns able or unable to write (for the health service). */
  onChange?: (serving: boolean) => void;
}

/** A request refused because of `fault`: nothing of it was applied, and the client may send it again. */
function refusal(fault: StorageFault): StorageFaultError {
  const when = fault.retryable ? "once the database can be written again (health SERVING)" : "once the database is restored";
  return new StorageFaultError(fault, { message: `${fault.message}; this request was not applied: retry it ${when}` });
}

/**
 * Whether the database can be written now, from every write the server makes (the journal,
 * the API's own) and from a probe write every few seconds; and whether its disk keeps the
 * free-space margin. While a fault holds the server is NOT_SERVING, every write is refused
 * UNAVAILABLE with the fault's message and that the request was not applied (the server's own
 * writes, the journal's, are retried instead), and watch streams end (their `signal` aborts) saying
 * where to resume; a retryable fault clears by itself at the first write that succeeds.
 * Corruption does not clear: writes stay stopped until an operator restores the database.
 */
export class StorageHealth {
  private fault: StorageFault | undefined;
  private lowSpace: string | undefined;
  private controller = new AbortController();
  private wakeProbe: (() => void) | undefined;
  /** Writers retrying a write that met a fault (the journal): only their own success ends the fault. */
  private retriers = 0;
  /** When the last retryable fault cleared (0: none has held). */
  private clearedAt = 0;

  constructor(private readonly options: StorageHealthOptions) {}

  /** The fault that holds now, if any. */
  get current(): StorageFault | undefined {
    return this.fault;
  }

  /**
   * Since when the database has taken writes: undefined while a fault holds, else when the
   * last one cleared (0: none has held). Runs do not count the time before it against their
   * progress deadline: while writes fail, nothing they do can be recorded.
   */
  writableSince(): number | undefined {
    return this.fault ? undefined : this.clearedAt;
  }

  /** Aborts when a fault begins (with the StorageFaultError as its reason); a fresh one is made once it clears. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** A write failed for a storage reason. Idempotent: a fault already held is not logged again. */
  reportFault(fault: StorageFault): void {
    if (this.fault?.kind === "corrupt") return;
    const began = this.fault === undefined;
    const sameKind = this.fault?.kind === fault.kind;
    // The newest wording (its free space) is what callers are told; the log says it once per kind.
    this.fault = fault;
    if (sameKind) return;
    const retried = fault.retryable ? "; the server retries its own writes until they succeed, and running graphs wait for them" : "";
    this.options.logger.error({ kind: fault.kind, retryable: fault.retryable }, `storage fault: ${fault.message}${retried}`);
    if (began) {
      this.controller.abort(new StorageFaultError(fault));
      this.options.onChange?.(false);
      // Probe soon and often until it clears, not at the next quiet interval.
      this.wakeProbe?.();
    }
  }

  /**
   * A writer retries a write that met a fault until it commits (`active` true), or stops
   * (false). Meanwhile a probe that succeeds does not end the fault: a tiny write can fit
   * where the retried one does not.
   */
  retrying(active: boolean): void {
    this.retriers += active ? 1 : -1;
  }

  /** A write committed: a retryable fault is over (`probe`: unless a writer still retries). */
  reportWritten(probe = false): void {
    if (this.fault === undefined || !this.fault.retryable) return;
    if (probe && this.retriers > 0) return;
    this.options.logger.warn({ kind: this.fault.kind }, "storage fault cleared: writes work again");
    this.fault = undefined;
    this.clearedAt = this.options.clock.now();
    this.controller = new AbortController();
    this.options.onChange?.(true);
  }

  /** Throws the fault (UNAVAILABLE) while one holds, before anything is done: for anything that writes. */
  refuseWrites(): void {
    if (this.fault) throw refusal(this.fault);
  }

  /** Throws while a fault holds or the disk is below its free-space margin: for new work (a revision, a graph). */
  refuseNewWork(): void {
    this.refuseWrites();
    if (this.lowSpace) throw new UnavailableError(this.lowSpace);
  }

  /** Probes until the signal aborts: a write and the free space, every interval (a fifth of it while a fault holds). */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, probeIntervalMs } = this.options;
    while (!signal.aborted) {
      await this.probe();
      const wait = new AbortController();
      this.wakeProbe = () => wait.abort();
      try {
        await clock.sleep(this.fault ? Math.max(1, Math.round(probeIntervalMs / 5)) : probeIntervalMs, AbortSignal.any([signal, wait.signal]));
      } catch {
        // Woken early by a fault, or stopped: the loop's condition tells which.
      } finally {
        this.wakeProbe = undefined;
      }
    }
  }

  /** One probe: a write (its fault arrives through reportFault if the store is guarded) and the free-space margin. */
  async probe(): Promise<void> {
    const { store, clock, logger, minFreeBytes } = this.options;
    try {
      await store.probeWrite(clock.now());
      this.reportWritten(true);
    } catch (error) {
      const fault = error instanceof StorageFaultError ? error.fault : store.describeFault(error);
      if (fault) this.reportFault(fault);
      else logger.error({ err: error }, "the database's write probe failed");
    }
    const free = minFreeBytes > 0 ? store.freeSpace() : undefined;
    const low =
      free && free.bytes < minFreeBytes
        ? `the database's disk is nearly full: ${formatBytes(free.bytes)} free in ${free.path}, below the margin of ${formatBytes(minFreeBytes)} (--min-free-space): new work is refused until space is freed; running graphs go on`
        : undefined;
    if (low && !this.lowSpace) logger.error(low);
    if (!low && this.lowSpace) logger.warn("free space is above the margin again: new work is accepted");
    this.lowSpace = low;
  }
}
