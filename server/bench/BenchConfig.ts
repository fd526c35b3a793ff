/**
 * The sizes of every figure: the issue's, or (smoke) tiny ones that only prove the
 * program still runs end to end. Slow figures run fewer times; the table says how many.
 */
export interface BenchConfig {
  smoke: boolean;
  /** When set, every server child runs under `node --cpu-prof` and writes its profile here. */
  profileDir?: string;
  plan: { smallNodes: number; largeNodes: number; maxSurge: number; maxUnavailable: number; runs: number };
  persist: { runs: number };
  dispatch: { tasks: number; parallelism: number; runs: number; ceilingRuns: number };
  efficiency: { tasks: number; latency: { min: number; max: number }; parallelism: number; runs: number };
  watchers: { watchers: number; tasks: number; latency: { min: number; max: number }; parallelism: number };
  api: { nodes: number; clients: number; requestsPerClient: number };
  memory: { nodes: number; watchers: number; holdMs: number };
  recovery: { nodes: number; inFlight: number; runs: number };
  /** A week-old past of `graphs` settled graphs of `tasksPerGraph` tasks (4 events a task). */
  retention: { graphs: number; tasksPerGraph: number };
  /** The client printing a plan of `nodes` + 1 tasks (and a rolling one of 2 × `nodes` + 1); --full also at `smallNodes`. */
  client: { nodes: number; smallNodes: number; runs: number };
}

export function benchConfig(smoke: boolean, profileDir?: string): BenchConfig {
  if (smoke) {
    return {
      smoke,
      profileDir,
      plan: { smallNodes: 100, largeNodes: 1_000, maxSurge: 10, maxUnavailable: 10, runs: 1 },
      persist: { runs: 1 },
      dispatch: { tasks: 300, parallelism: 16, runs: 1, ceilingRuns: 1 },
      efficiency: { tasks: 60, latency: { min: 2, max: 4 }, parallelism: 8, runs: 1 },
      watchers: { watchers: 8, tasks: 20, latency: { min: 5, max: 15 }, parallelism: 4 },
      api: { nodes: 200, clients: 4, requestsPerClient: 2 },
      memory: { nodes: 1_000, watchers: 4, holdMs: 200 },
      recovery: { nodes: 1_000, inFlight: 8, runs: 1 },
      retention: { graphs: 4, tasksPerGraph: 100 },
      client: { nodes: 1_000, smallNodes: 100, runs: 1 },
    };
  }
  return {
    smoke,
    profileDir,
    plan: { smallNodes: 10_000, largeNodes: 100_000, maxSurge: 100, maxUnavailable: 100, runs: 5 },
    persist: { runs: 3 },
    dispatch: { tasks: 100_000, parallelism: 256, runs: 1, ceilingRuns: 3 },
    efficiency: { tasks: 2_000, latency: { min: 20, max: 40 }, parallelism: 64, runs: 3 },
    watchers: { watchers: 1_000, tasks: 1_000, latency: { min: 500, max: 2_000 }, parallelism: 64 },
    api: { nodes: 10_000, clients: 64, requestsPerClient: 5 },
    memory: { nodes: 100_000, watchers: 100, holdMs: 5_000 },
    recovery: { nodes: 100_000, inFlight: 200, runs: 3 },
    retention: { graphs: 250, tasksPerGraph: 1_000 },
    client: { nodes: 100_000, smallNodes: 10_000, runs: 3 },
  };
}
