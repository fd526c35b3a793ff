/**
 * Repeated replacement of a group's failed nodes backs off exponentially, like Kubernetes'
 * CrashLoopBackOff: the first replacement goes at once, the next after 10 s, then 20 s, 40 s,
 * … up to 5 min; once a replacement has run 10 min without a failure in the group, the
 * count starts again. So a version that dies right after it starts costs a replacement at
 * 0 s, 10 s, 30 s, 70 s, … instead of one a second.
 *
 * In memory, per group: a restarted server starts counting afresh (and replaces at once).
 */
export interface CrashLoopOptions {
  initialMs: number;
  maxMs: number;
  resetAfterMs: number;
}

export const DEFAULT_CRASH_LOOP: CrashLoopOptions = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };

export interface CrashLoopStatus {
  /** Replacements since the loop began. */
  restarts: number;
  /** When the next replacement may start (ms since the epoch). */
  nextAttemptAt: number;
  lastFailure: string;
}

interface GroupLoop {
  restarts: number;
  nextAttemptAt: number;
  lastReplacedAt: number;
  lastFailure: string;
  lastFailureAt: number;
}

export class CrashLoopBackoff {
  private readonly groups = new Map<string, GroupLoop>();

  constructor(private readonly options: CrashLoopOptions = DEFAULT_CRASH_LOOP) {}

  /** A node of the group failed on its own (it died, or failed its health check). */
  failed(group: string, reason: string, now: number): void {
    const loop = this.groups.get(group);
    if (!loop) {
      this.groups.set(group, { restarts: 0, nextAttemptAt: now, lastReplacedAt: 0, lastFailure: reason, lastFailureAt: now });
      return;
    }
    // The last replacement ran long enough to count as healthy: this failure starts a new count.
    if (loop.restarts > 0 && now - loop.lastReplacedAt >= this.options.resetAfterMs) {
      loop.restarts = 0;
      loop.nextAttemptAt = now;
    }
    loop.lastFailure = reason;
    loop.lastFailureAt = now;
  }

  /** How long to wait before the group's next replacement may start (0: now). */
  delay(group: string, now: number): number {
    const loop = this.groups.get(group);
    return loop ? Math.max(0, loop.nextAttemptAt - now) : 0;
  }

  /** A replacement starts now; the next one waits twice as long as the last (up to the maximum). */
  replaced(group: string, now: number): number {
    const loop = this.groups.get(group) ?? { restarts: 0, nextAttemptAt: now, lastReplacedAt: 0, lastFailure: "", lastFailureAt: now };
    this.groups.set(group, loop);
    loop.restarts++;
    loop.lastReplacedAt = now;
    loop.nextAttemptAt = now + Math.min(this.options.maxMs, this.options.initialMs * 2 ** (loop.restarts - 1));
    return loop.restarts;
  }

  /** The group is gone (deleted): its loop with it. */
  forget(group: string): void {
    this.groups.delete(group);
  }

  /** The group's loop while it is one: a replacement failed again (two or more), and a failure within the reset window. */
  status(group: string, now: number): CrashLoopStatus | undefined {
    const loop = this.groups.get(group);
    if (!loop || loop.restarts < 2 || now - loop.lastFailureAt >= this.options.resetAfterMs) return undefined;
    return { restarts: loop.restarts, nextAttemptAt: loop.nextAttemptAt, lastFailure: loop.lastFailure };
  }
}
