import { delay } from "abort-controller-x";

/** Time comes in through this, so that the scheduler and drivers can be tested deterministically. */
export interface Clock {
  now(): number;
  /** Resolves after `milliseconds`, or rejects with an AbortError when the signal aborts. */
  sleep(milliseconds: number, signal: AbortSignal): Promise<void>;
  /** Calls `callback` after `milliseconds`; returns what cancels it. */
  setTimer(milliseconds: number, callback: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (milliseconds, signal) => delay(signal, milliseconds),
  setTimer: (milliseconds, callback) => {
    const timer = setTimeout(callback, milliseconds);
    return () => clearTimeout(timer);
  },
};

/** A seeded pseudo-random source in [0, 1): mulberry32, small and good enough for simulation. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
