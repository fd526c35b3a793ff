import { AbortError } from "abort-controller-x";

interface Waiter {
  grant: () => void;
  signal: AbortSignal;
  reject: (error: unknown) => void;
}

/**
 * A counting semaphore with a FIFO queue, so tasks get slots in the order they became ready.
 *
 * A graph may have 100,000 tasks waiting at once, all on the same abort signal, so waiters
 * are grouped by signal with one listener each: adding a listener per waiter would make each
 * addition scan the signal's growing list.
 */
export class Semaphore {
  private available: number;
  // A Set keeps insertion order and removes in O(1).
  private readonly waiters = new Set<Waiter>();
  private readonly waitersBySignal = new Map<AbortSignal, Set<Waiter>>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`semaphore capacity ${capacity} must be a positive integer`);
    this.available = capacity;
  }

  get inUse(): number {
    return this.capacity - this.available;
  }

  /** Waits for a slot; resolves with the function that gives it back. Rejects with AbortError if the signal aborts first. */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(new AbortError());
    if (this.available > 0) {
      this.available--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { grant: () => resolve(this.releaser()), signal, reject };
      this.waiters.add(waiter);
      let sharing = this.waitersBySignal.get(signal);
      if (!sharing) {
        sharing = new Set();
        this.waitersBySignal.set(signal, sharing);
        signal.addEventListener("abort", () => this.abortWaiters(signal), { once: true });
      }
      sharing.add(waiter);
    });
  }

  private abortWaiters(signal: AbortSignal): void {
    const aborted = this.waitersBySignal.get(signal);
    this.waitersBySignal.delete(signal);
    for (const waiter of aborted ?? []) {
      this.waiters.delete(waiter);
      waiter.reject(new AbortError());
    }
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.values().next();
      if (next.done) {
        this.available++;
        return;
      }
      const waiter = next.value;
      this.waiters.delete(waiter);
      this.waitersBySignal.get(waiter.signal)?.delete(waiter);
      waiter.grant();
    };
  }
}
