import { AbortError } from "abort-controller-x";

interface Waiter {
  grant: () => void;
  signal: AbortSignal;
  reject: (error: unknown) => void;
  /** Set when its signal aborted: the queue skips it. */
  gone: boolean;
}

/**
 * A counting semaphore with a FIFO queue, so tasks get slots in the order they became ready.
 *
 * Many waiters may share one abort signal (each graph run asks for up to `capacity` slots on
 * its own), so waiters are grouped by signal with one listener each: adding a listener per
 * waiter would make each addition scan the signal's growing list. The queue is an array with a moving head (aborted
 * waiters are marked and skipped): a Set emptied from the front makes each `values().next()`
 * step over the deleted entries, which was a tenth of a busy server's time.
 */
export class Semaphore {
  private available: number;
  private queue: Waiter[] = [];
  private head = 0;
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
      const waiter: Waiter = { grant: () => resolve(this.releaser()), signal, reject, gone: false };
      this.queue.push(waiter);
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
      waiter.gone = true;
      waiter.reject(new AbortError());
    }
  }

  /** The first waiter still waiting, taken off the queue; undefined when none is. */
  private next(): Waiter | undefined {
    while (this.head < this.queue.length) {
      const waiter = this.queue[this.head]!;
      this.queue[this.head++] = undefined as never;
      if (!waiter.gone) return waiter;
    }
    return undefined;
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const waiter = this.next();
      // Drop the spent front of the queue now and then, so it does not grow without bound.
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (!waiter) {
        this.available++;
        return;
      }
      this.waitersBySignal.get(waiter.signal)?.delete(waiter);
      waiter.grant();
    };
  }
}
