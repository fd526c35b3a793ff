import type { Event } from "../domain.js";
import type { Store, Transition } from "../store/Store.js";
import { type Failpoint, noFailpoints } from "../failpoints.js";
import type { EventBus } from "./EventBus.js";

/**
 * The one way state changes: commit to the store, then announce to watchers. Changes
 * recorded in the same tick of the event loop are committed together in one transaction
 * (group commit), which is what keeps a busy scheduler's durable write rate high.
 */
export class Journal {
  private pending: { transitions: readonly Transition[]; resolve: (events: Event[]) => void; reject: (error: unknown) => void }[] = [];
  private flushScheduled = false;

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly now: () => number,
    private readonly failpoint: Failpoint = noFailpoints,
  ) {}

  /** Resolves once everything recorded so far is committed and published (watchers get it within the bus's linger). */
  async settled(): Promise<void> {
    await this.record([]);
  }

  /** Commits the transitions (with others of this tick) and resolves with their events once announced. */
  record(transitions: readonly Transition[]): Promise<Event[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ transitions, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => void this.commitBatch());
      }
    });
  }

  private async commitBatch(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.flushScheduled = false;
    let events: Event[];
    try {
      this.failpoint("journal.before-commit");
      events = await this.store.apply(batch.flatMap((entry) => entry.transitions), this.now());
      this.failpoint("journal.after-commit");
    } catch (error) {
      for (const entry of batch) entry.reject(error);
      return;
    }
    this.bus.publish(events);
    let offset = 0;
    for (const entry of batch) {
      entry.resolve(events.slice(offset, offset + entry.transitions.length));
      offset += entry.transitions.length;
    }
  }
}
