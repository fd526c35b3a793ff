import { AbortError } from "abort-controller-x";

/** A counting semaphore with a FIFO queue, so tasks get slots in the order they became ready. */
export class Semaphore {
  private available: number;
  // A Set keeps insertion order and removes in O(1), for queues of 100,000 waiting tasks.
  private readonly waiters = new Set<{ grant: () => void }>();

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
      const waiter = {
        grant: () => {
          signal.removeEventListener("abort", onAbort);
          resolve(this.releaser());
        },
      };
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(new AbortError());
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.values().next();
      if (!next.done) {
        this.waiters.delete(next.value);
        next.value.grant();
      } else {
        this.available++;
      }
    };
  }
}
