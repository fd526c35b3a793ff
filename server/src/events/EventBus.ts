import type { Event } from "../domain.js";

/** How many undelivered events one subscriber may hold before it is cut off. */
export const DEFAULT_SUBSCRIBER_CAPACITY = 50_000;

/**
 * Fans committed events out to subscribers, in sequence order. Each subscriber has a
 * bounded queue: one that falls further behind than its capacity is marked overflowed and
 * gets nothing more, so a slow watcher never makes the server's memory grow without bound.
 */
export class EventBus {
  private readonly subscribers = new Set<Subscription>();
  private readonly listeners: ((events: readonly Event[]) => void)[] = [];
  private undelivered: Event[] = [];
  private deliveryScheduled = false;

  /**
   * @param lingerMs how long subscribers' events are held after a commit so that those of the
   *   next commits go with them: with a thousand watchers, one wake-up (and one message) each
   *   per `lingerMs` instead of one per commit, and one timer for all of them. 0 delivers at once.
   */
  constructor(private readonly lingerMs = 0) {}

  /** Calls `listener` with each batch of committed events, synchronously, for in-process consumers that keep up. */
  listen(listener: (events: readonly Event[]) => void): void {
    this.listeners.push(listener);
  }

  subscribe(filter: (event: Event) => boolean, capacity = DEFAULT_SUBSCRIBER_CAPACITY): Subscription {
    const subscription = new Subscription(filter, capacity, () => this.subscribers.delete(subscription));
    this.subscribers.add(subscription);
    return subscription;
  }

  /** Hands committed events to every subscriber; call only after they are committed. */
  publish(events: readonly Event[]): void {
    if (events.length === 0) return;
    for (const listener of this.listeners) listener(events);
    if (this.lingerMs === 0) {
      for (const subscriber of this.subscribers) subscriber.offer(events);
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
    for (const subscriber of this.subscribers) subscriber.offer(events);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}

export class Subscription {
  private queue: Event[] = [];
  private wake: (() => void) | undefined;
  private abortSignal: AbortSignal | undefined;
  private closed = false;
  /** Set when the queue overflowed: the events after `overflowedAfter` were dropped. */
  overflowedAfter: number | undefined;
  /** The sequence number of the first event this subscription was given: it has every one after (unless it overflowed). */
  firstSequence: number | undefined;

  constructor(
    private readonly filter: (event: Event) => boolean,
    private readonly capacity: number,
    private readonly onClose: () => void,
  ) {}

  offer(events: readonly Event[]): void {
    if (this.closed || this.overflowedAfter !== undefined) return;
    for (const event of events) {
      if (!this.filter(event)) continue;
      if (this.queue.length >= this.capacity) {
        this.overflowedAfter = this.queue.at(-1)?.sequence ?? event.sequence - 1;
        break;
      }
      this.queue.push(event);
      this.firstSequence ??= event.sequence;
    }
    this.wake?.();
  }

  /**
   * Every queued event, waiting for at least one. Returns an empty list when the queue
   * overflowed (read `overflowedAfter`) or the signal aborted.
   */
  async take(signal: AbortSignal): Promise<Event[]> {
    if (this.abortSignal !== signal) {
      // One listener for the subscription's life, not one per wait: a busy watcher waits often.
      // Removed on close: a combined signal (AbortSignal.any) with a listener lives until it aborts.
      this.abortSignal?.removeEventListener("abort", this.onAbort);
      this.abortSignal = signal;
      signal.addEventListener("abort", this.onAbort, { once: true });
    }
    while (this.queue.length === 0 && this.overflowedAfter === undefined && !this.closed && !signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = () => {
          this.wake = undefined;
          resolve();
        };
      });
    }
    const events = this.queue;
    this.queue = [];
    return events;
  }

  private readonly onAbort = () => this.wake?.();

  close(): void {
    this.abortSignal?.removeEventListener("abort", this.onAbort);
    this.abortSignal = undefined;
    this.closed = true;
    this.queue = [];
    this.wake?.();
    this.onClose();
  }
}
