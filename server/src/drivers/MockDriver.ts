import { hostname } from "node:os";
import type { Clock } from "../clock.js";
import { seededRandom } from "../clock.js";
import { DriverError, type Driver, type NodeFailureListener, type NodeHandle, type StrayNode } from "./Driver.js";

export interface MockDriverOptions {
  /** Each start and stop takes a latency drawn uniformly from this range, in milliseconds. */
  latency: { min: number; max: number };
  /** The probability, from 0 to 1, that a start or stop fails. */
  failureRate: number;
  /** The probability, from 0 to 1, that a running node crashes in any one second. */
  crashRate?: number;
  seed: number;
  clock: Clock;
  host?: string;
}

/**
 * The simulated driver: nodes that exist only in memory, with a seeded random latency,
 * failure rate and crash rate, for demos and tests. A simulated node outlives a server
 * restart: `inspect` re-adopts any node the store says is running.
 */
export class MockDriver implements Driver {
  readonly name = "mock";
  readonly host: string;
  private readonly random: () => number;
  private readonly running = new Map<string, NodeHandle>();
  private readonly listeners: NodeFailureListener[] = [];
  private readonly closed = new AbortController();

  constructor(private readonly options: MockDriverOptions) {
    this.random = seededRandom(options.seed);
    this.host = options.host ?? hostname();
    if ((options.crashRate ?? 0) > 0) void this.simulateCrashes(options.crashRate!);
  }

  async start(node: NodeHandle, signal: AbortSignal): Promise<void> {
    if (this.running.has(node.id)) return;
    await this.simulate(`start of node ${node.id}`, signal);
    this.running.set(node.id, node);
  }

  async stop(node: NodeHandle, signal: AbortSignal): Promise<void> {
    await this.simulate(`stop of node ${node.id}`, signal);
    this.running.delete(node.id);
  }

  async inspect(node: NodeHandle): Promise<"running" | "stopped"> {
    this.running.set(node.id, node);
    return "running";
  }

  onNodeFailure(listener: NodeFailureListener): void {
    this.listeners.push(listener);
  }

  async strays(keep: ReadonlySet<string>): Promise<StrayNode[]> {
    return [...this.running.values()].filter((node) => !keep.has(node.id)).map((node) => ({ id: node.id, group: node.group, running: true }));
  }

  async sweep(nodeIds: readonly string[]): Promise<string[]> {
    const swept = nodeIds.filter((id) => this.running.has(id));
    for (const id of swept) this.running.delete(id);
    return swept;
  }

  /** Simulated nodes keep no files. */
  async nodesWithFiles(): Promise<string[]> {
    return [];
  }

  async removeNodeFiles(_nodeIds: readonly string[]): Promise<string[]> {
    return [];
  }

  close(): void {
    this.closed.abort();
  }

  async kill(node: NodeHandle): Promise<boolean> {
    return this.crash(node.id, "killed on request");
  }

  stats(): undefined {
    return undefined;
  }

  logFile(): undefined {
    return undefined;
  }

  /** Simulates a crash of a running node; returns whether it was running. */
  crash(nodeId: string, reason: string): boolean {
    const node = this.running.get(nodeId);
    if (!node) return false;
    this.running.delete(nodeId);
    for (const listener of this.listeners) listener(node, { state: "failed", reason });
    return true;
  }

  private async simulate(what: string, signal: AbortSignal): Promise<void> {
    const { min, max } = this.options.latency;
    // Both draws happen before the wait so that a run's sequence of outcomes depends only on the seed.
    const latency = min + this.random() * (max - min);
    const fails = this.random() < this.options.failureRate;
    if (latency > 0) await this.options.clock.sleep(latency, signal);
    else signal.throwIfAborted();
    if (fails) throw new DriverError(`simulated failure of the ${what}`);
  }

  private async simulateCrashes(ratePerSecond: number): Promise<void> {
    for (;;) {
      try {
        await this.options.clock.sleep(1000, this.closed.signal);
      } catch {
        return;
      }
      for (const id of [...this.running.keys()]) {
        if (this.random() < ratePerSecond) this.crash(id, "simulated crash");
      }
    }
  }
}
