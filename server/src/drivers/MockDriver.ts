import { hostname } from "node:os";
import type { Clock } from "../clock.js";
import { seededRandom } from "../clock.js";
import { DriverError, type Driver, type NodeHandle } from "./Driver.js";

export interface MockDriverOptions {
  /** Each start and stop takes a latency drawn uniformly from this range, in milliseconds. */
  latency: { min: number; max: number };
  /** The probability, from 0 to 1, that a start or stop fails. */
  failureRate: number;
  seed: number;
  clock: Clock;
  host?: string;
}

/**
 * The simulated driver: nodes that exist only in memory, with a seeded random latency and
 * failure rate, for demos and tests. Nodes it has not seen (after a server restart) are
 * taken to be as the store says: starting one that already runs is a no-op.
 */
export class MockDriver implements Driver {
  readonly name = "mock";
  readonly host: string;
  private readonly random: () => number;
  private readonly running = new Set<string>();

  constructor(private readonly options: MockDriverOptions) {
    this.random = seededRandom(options.seed);
    this.host = options.host ?? hostname();
  }

  async start(node: NodeHandle, signal: AbortSignal): Promise<void> {
    if (this.running.has(node.id)) return;
    await this.simulate(`start of node ${node.id}`, signal);
    this.running.add(node.id);
  }

  async stop(node: NodeHandle, signal: AbortSignal): Promise<void> {
    await this.simulate(`stop of node ${node.id}`, signal);
    this.running.delete(node.id);
  }

  async inspect(node: NodeHandle): Promise<"running" | "stopped" | "unknown"> {
    return this.running.has(node.id) ? "running" : "unknown";
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
}
