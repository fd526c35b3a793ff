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
    for (const subscriber of this.subscribers) subscriber.offer(events);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}

export class Subscription {
  private queue: Event[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  /** Set when the queue overflowed: the events after `overflowedAfter` were dropped. */
  overflowedAfter: number | undefined;

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
    }
    this.wake?.();
  }

  /**
   * Every queued event, waiting for at least one. Returns an empty list when the queue
   * overflowed (read `overflowedAfter`) or the signal aborted.
   */
  async take(signal: AbortSignal): Promise<Event[]> {
    while (this.queue.length === 0 && this.overflowedAfter === undefined && !this.closed && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener("abort", done);
      });
    }
    const events = this.queue;
    this.queue = [];
    return events;
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.wake?.();
    this.onClose();
  }
}
