import assert from "node:assert/strict";
import { setMaxListeners } from "node:events";
import { describe, it } from "node:test";
import { Semaphore } from "../src/scheduler/Semaphore.js";

describe("Semaphore", () => {
  it("never lets more than its capacity run at once, and runs all", async () => {
    const semaphore = new Semaphore(3);
    let running = 0;
    let most = 0;
    let done = 0;
    const signal = new AbortController().signal;
    setMaxListeners(0, signal);
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const release = await semaphore.acquire(signal);
        running++;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, i % 3));
        running--;
        done++;
        release();
      }),
    );
    assert.equal(most, 3);
    assert.equal(done, 50);
    assert.equal(semaphore.inUse, 0);
  });

  it("grants slots in the order they were asked for", async () => {
    const semaphore = new Semaphore(1);
    const signal = new AbortController().signal;
    const first = await semaphore.acquire(signal);
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) => semaphore.acquire(signal).then((release) => (order.push(n), release())));
    first();
    await Promise.all(waiters);
    assert.deepEqual(order, [1, 2, 3]);
  });

  it("rejects a waiter whose signal aborts, and gives its turn to the next", async () => {
    const semaphore = new Semaphore(1);
    const held = await semaphore.acquire(new AbortController().signal);
    const aborter = new AbortController();
    const abandoned = semaphore.acquire(aborter.signal);
    const next = semaphore.acquire(new AbortController().signal);
    aborter.abort();
    await assert.rejects(abandoned, { name: "AbortError" });
    held();
    const release = await next;
    assert.equal(semaphore.inUse, 1);
    release();
    release();
    assert.equal(semaphore.inUse, 0, "releasing twice gives back one slot");
  });
});
