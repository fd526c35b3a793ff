import type { Event } from "../domain.js";
import type { StorageFault, Store, Transition } from "../store/Store.js";
import { StorageFaultError } from "../errors.js";
import { type Failpoint, noFailpoints } from "../failpoints.js";
import type { EventBus } from "./EventBus.js";

/** What the journal tells of the store's health, and asks before it writes (see StorageHealth). */
export interface JournalHealth {
  /** The fault that holds now: one that is not retryable (corruption) stops every commit. */
  readonly current: StorageFault | undefined;
  reportWritten(): void;
  /** The journal retries a commit that met a fault (true) until it commits or gives up (false). */
  retrying(active: boolean): void;
}

export interface JournalOptions {
  store: Store;
  bus: EventBus;
  now: () => number;
  failpoint?: Failpoint;
  health?: JournalHealth;
  /** Sleeps between retries of a commit that met a storage fault; rejects when the signal aborts. */
  sleep?: (milliseconds: number, signal: AbortSignal) => Promise<void>;
  /** Aborted when the server stops: a commit being retried then fails, and the runs are interrupted. */
  signal?: AbortSignal;
}

/** The first wait before a failed commit is tried again, doubling to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2000;

/**
 * The one way state changes: commit to the store, then announce to watchers. Changes
 * recorded while a commit is under way are committed together in the next transaction (group
 * commit), which keeps a busy scheduler's durable write rate high; one commit at a time, so
 * events reach watchers in the order they were committed, whatever the store's latency.
 *
 * A commit that meets a retryable storage fault (a full disk, an I/O error) is tried again
 * with backoff until it succeeds or the server stops: the transitions waiting on it simply
 * wait (so runs pause where they are), health is NOT_SERVING meanwhile, and everything goes
 * on once writes work again. Anything else rejects the batch's callers.
 */
export class Journal {
  private pending: { transitions: readonly Transition[]; resolve: (events: Event[]) => void; reject: (error: unknown) => void }[] = [];
  private flushing = false;
  private readonly store: Store;
  private readonly bus: EventBus;
  private readonly now: () => number;
  private readonly failpoint: Failpoint;

  constructor(private readonly options: JournalOptions) {
    this.store = options.store;
    this.bus = options.bus;
    this.now = options.now;
    this.failpoint = options.failpoint ?? noFailpoints;
  }

  /** Resolves once everything recorded so far is committed and published (watchers get it within the bus's linger). */
  async settled(): Promise<void> {
    await this.record([]);
  }

  /** Commits the transitions (with others recorded meanwhile) and resolves with their events once announced. */
  record(transitions: readonly Transition[]): Promise<Event[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ transitions, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Commits batches one after another until nothing is pending. */
  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      let events: Event[];
      try {
        events = await this.commit(batch.flatMap((entry) => entry.transitions));
      } catch (error) {
        for (const entry of batch) entry.reject(error);
        continue;
      }
      this.bus.publish(events);
      let offset = 0;
      for (const entry of batch) {
        entry.resolve(events.slice(offset, offset + entry.transitions.length));
        offset += entry.transitions.length;
      }
    }
    this.flushing = false;
  }

  private async commit(transitions: readonly Transition[]): Promise<Event[]> {
    const { health, sleep, signal } = this.options;
    let retrying = false;
    try {
      for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
        const held = health?.current;
        if (held && !held.retryable) throw new StorageFaultError(held);
        try {
          this.failpoint("journal.before-commit");
          const events = await this.store.apply(transitions, this.now());
          this.failpoint("journal.after-commit");
          if (health?.current) health.reportWritten();
          return events;
        } catch (error) {
          const retryable = error instanceof StorageFaultError && error.fault.retryable;
          if (!retryable || !sleep || !signal || signal.aborted) throw error;
          if (!retrying) health?.retrying((retrying = true));
          await sleep(delay, signal).catch(() => {
            throw error;
          });
        }
      }
    } finally {
      if (retrying) health?.retrying(false);
    }
  }
}
