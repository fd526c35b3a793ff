import type { Event } from "../domain.js";

/** How many undelivered events one subscriber may hold before it is cut off. */
export const DEFAULT_SUBSCRIBER_CAPACITY = 50_000;
/**
 * How many undelivered events all subscribers together may hold: about 16 MB of references
 * (the events themselves are shared), whatever the number of watchers.
 */
export const DEFAULT_TOTAL_CAPACITY = 2_000_000;

/** Why a subscription overflowed: it alone fell its capacity behind, or it was furthest behind when all of them together held too much. */
export type OverflowReason = "behind" | "crowded";

/** What every subscription holds unsent, together. */
interface Backlog {
  events: number;
}

/**
 * Fans committed events out to subscribers, in sequence order. Each subscriber has a
 * bounded queue: one that falls further behind than its capacity overflows the moment it is
 * offered one event too many (not when it next reads): its queue is dropped, it leaves the
 * bus and its `overflowed` signal aborts. And when all of them together hold more than
 * `totalCapacity`, those furthest behind overflow until they do not. So watchers that stop
 * reading never make the server's memory grow without bound, however many there are.
 */
export class EventBus {
  private readonly subscribers = new Set<Subscription>();
  private readonly listeners: ((events: readonly Event[]) => void)[] = [];
  private readonly backlog: Backlog = { events: 0 };
  private undelivered: Event[] = [];
  private deliveryScheduled = false;

  /**
   * @param lingerMs how long subscribers' events are held after a commit so that those of the
   *   next commits go with them: with a thousand watchers, one wake-up (and one message) each
   *   per `lingerMs` instead of one per commit, and one timer for all of them. 0 delivers at once.
   * @param totalCapacity how many undelivered events all subscribers together may hold.
   */
  constructor(
    private readonly lingerMs = 0,
    private readonly totalCapacity = DEFAULT_TOTAL_CAPACITY,
  ) {}

  /** Calls `listener` with each batch of committed events, synchronously, for in-process consumers that keep up. */
  listen(listener: (events: readonly Event[]) => void): void {
    this.listeners.push(listener);
  }

  subscribe(filter: (event: Event) => boolean, capacity = DEFAULT_SUBSCRIBER_CAPACITY): Subscription {
    const subscription = new Subscription(filter, capacity, this.backlog, () => this.subscribers.delete(subscription));
    this.subscribers.add(subscription);
    return subscription;
  }

  /** Hands committed events to every subscriber; call only after they are committed. */
  publish(events: readonly Event[]): void {
    if (events.length === 0) return;
    for (const listener of this.listeners) listener(events);
    if (this.lingerMs === 0) {
      this.offer(events);
      return;
    }
    for (const event of events) this.undelivered.push(event);
    if (!this.deliveryScheduled) {
      this.deliveryScheduled = true;
      setTimeout(() => this.deliver(), this.lingerMs);
    }
  }

  private deliver(): void {
    const events = this.undelivered;
    this.undelivered = [];
    this.deliveryScheduled = false;
    this.offer(events);
  }

  private offer(events: readonly Event[]): void {
    for (const subscriber of this.subscribers) subscriber.offer(events);
    if (this.backlog.events > this.totalCapacity) this.cutFurthestBehind();
  }

  /** Overflows the subscribers that hold the most until all of them together hold no more than the total capacity. */
  private cutFurthestBehind(): void {
    const byBacklog = [...this.subscribers].sort((a, b) => b.backlog - a.backlog);
    for (const subscriber of byBacklog) {
      if (this.backlog.events <= this.totalCapacity) return;
      subscriber.overflow("crowded");
    }
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Undelivered events all subscribers hold together. */
  get backlogEvents(): number {
    return this.backlog.events;
  }
}

/**
 * One subscriber's queue. What counts toward its capacity is what it holds and has not yet
 * sent: the queued events, and those of its last two `take`s (a watch stream takes again
 * only once its client has read all it sent but the message being written: see StreamOutlet).
 */
export class Subscription {
  private queue: Event[] = [];
  /** Events of the last take, and of the one before: on their way to the client. */
  private taken = 0;
  private takenBefore = 0;
  private wake: (() => void) | undefined;
  private abortSignal: AbortSignal | undefined;
  private closed = false;
  private readonly overflowController = new AbortController();
  /** Aborted the moment the subscription overflows: its queue is gone and it gets nothing more. */
  readonly overflowed: AbortSignal = this.overflowController.signal;
  /** Why it overflowed, once it has. */
  overflowReason: OverflowReason | undefined;
  /** The sequence number of the first event this subscription was given: it has every one after (unless it overflowed). */
  firstSequence: number | undefined;

  constructor(
    private readonly filter: (event: Event) => boolean,
    private readonly capacity: number,
    private readonly busBacklog: Backlog,
    private readonly onClose: () => void,
  ) {}

  /** The events it holds unsent. */
  get backlog(): number {
    return this.queue.length + this.taken + this.takenBefore;
  }

  offer(events: readonly Event[]): void {
    if (this.closed || this.overflowed.aborted) return;
    for (const event of events) {
      if (!this.filter(event)) continue;
      if (this.backlog >= this.capacity) {
        this.overflow("behind");
        return;
      }
      this.queue.push(event);
      this.busBacklog.events++;
      this.firstSequence ??= event.sequence;
    }
    this.wake?.();
  }

  /** Drops what it holds, leaves the bus, and aborts `overflowed`: its watcher must end. */
  overflow(reason: OverflowReason): void {
    if (this.closed || this.overflowed.aborted) return;
    this.overflowReason = reason;
    this.release();
    this.onClose();
    this.overflowController.abort();
    this.wake?.();
  }

  /**
   * Up to `limit` queued events, waiting for at least one. Returns an empty list when the
   * subscription overflowed or closed, or the signal aborted. The events it returns count
   * toward the capacity until the take after next: call it again only once those of the
   * take before it are sent.
   */
  async take(signal: AbortSignal, limit = Number.POSITIVE_INFINITY): Promise<Event[]> {
    this.busBacklog.events -= this.takenBefore;
    this.takenBefore = this.taken;
    this.taken = 0;
    if (this.abortSignal !== signal) {
      // One listener for the subscription's life, not one per wait: a busy watcher waits often.
      // Removed on close: a combined signal (AbortSignal.any) with a listener lives until it aborts.
      this.abortSignal?.removeEventListener("abort", this.onAbort);
      this.abortSignal = signal;
      signal.addEventListener("abort", this.onAbort, { once: true });
    }
    while (this.queue.length === 0 && !this.overflowed.aborted && !this.closed && !signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = () => {
          this.wake = undefined;
          resolve();
        };
      });
    }
    let events: Event[];
    if (this.queue.length <= limit) {
      events = this.queue;
      this.queue = [];
    } else {
      events = this.queue.splice(0, limit);
    }
    this.taken = events.length;
    return events;
  }

  private readonly onAbort = () => this.wake?.();

  close(): void {
    this.abortSignal?.removeEventListener("abort", this.onAbort);
    this.abortSignal = undefined;
    this.release();
    this.closed = true;
    this.wake?.();
    this.onClose();
  }

  private release(): void {
    this.busBacklog.events -= this.backlog;
    this.queue = [];
    this.taken = 0;
    this.takenBefore = 0;
  }
}
