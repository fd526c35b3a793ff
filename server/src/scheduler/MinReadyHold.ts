import { durationText } from "@drover/shared";
import type { Clock } from "../clock.js";
import type { Node } from "../domain.js";
import { DriverError, type Driver, type NodeFailure, type NodeHandle } from "../drivers/Driver.js";

/**
 * Min-ready (Kubernetes' minReadySeconds, Nomad's min_healthy_time): a started node must stay
 * up for a while before its start succeeds. `hold` waits that long for one node; a failure of
 * the node meanwhile (`nodeFailed`, from the driver's watch) fails the wait, so that attempt
 * fails and is retried like any failed start.
 */
export class MinReadyHold {
  /** Nodes being held, and what fails each one's wait. */
  private readonly waiters = new Map<string, (failure: NodeFailure) => void>();

  constructor(
    private readonly clock: Clock,
    private readonly driver: Driver,
    /** How long stopping a node that turned unhealthy may take. */
    private readonly stopTimeoutMs: number,
  ) {}

  /** Resolves once the node has stayed up for `minReadyMs`; rejects when it fails first, or the signal aborts. */
  hold(node: Node, handle: NodeHandle, minReadyMs: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        cancelTimer();
        this.waiters.delete(node.id);
        signal.removeEventListener("abort", onAbort);
      };
      const cancelTimer = this.clock.setTimer(minReadyMs, () => {
        done();
        resolve();
      });
      const onAbort = () => {
        done();
        reject(signal.reason ?? new Error("aborted"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.set(node.id, (failure) => {
        done();
        node.exitStatus = failure.exitStatus ?? node.exitStatus;
        const how = failure.state === "failed" ? "failed" : "turned unhealthy";
        const error = new DriverError(`node ${node.id} ${how} within its min-ready of ${durationText(minReadyMs)}: ${failure.reason}`);
        if (failure.state === "failed") return reject(error);
        // Still there but unhealthy: stopped, so the retry starts it afresh.
        const fail = () => reject(error);
        this.driver.stop(handle, AbortSignal.timeout(this.stopTimeoutMs)).then(fail, fail);
      });
    });
  }

  /** Fails the wait of a node being held; returns whether one was. */
  nodeFailed(nodeId: string, failure: NodeFailure): boolean {
    const waiter = this.waiters.get(nodeId);
    if (!waiter) return false;
    waiter(failure);
    return true;
  }
}
