import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListNodesRequest, SetSpecRequest } from "@drover/shared";
import { openSqliteStore } from "../src/store/SqliteStore.js";
import type { BenchConfig } from "./BenchConfig.js";
import { type Figure, quantile } from "./Figure.js";
import type { ProfileLog } from "./profileSummary.js";
import { BENCH_GROUP, MIGRATIONS_DIR, seedNodes, seedSpec } from "./seedDataDir.js";
import { ServerProcess } from "./ServerProcess.js";

type Connection = ReturnType<ServerProcess["rawClient"]>;

/** Every client makes `requests` calls back to back, all clients at once: each call's latency, and how busy the server was. */
async function underLoad(server: ServerProcess, connections: Connection[], requests: number, method: string, request: Uint8Array) {
  const latencies: number[] = [];
  let bytes = 0;
  const cpuBefore = server.cpuSeconds();
  const started = performance.now();
  await Promise.all(
    connections.map(async (connection) => {
      for (let i = 0; i < requests; i++) {
        const sent = performance.now();
        bytes = await server.rawUnary(connection, method, request);
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { latencies, perSecond: latencies.length / seconds, serverBusy: (server.cpuSeconds() - cpuBefore) / seconds, bytes };
}

/**
 * Figure 6: ListNodes of a group of `nodes` running nodes, and dry runs of its version
 * change (plan only: nothing stored), each under `clients` concurrent clients on their
 * own connections, each calling back to back (a closed loop: a call's latency includes its
 * wait behind the other clients' calls on the server's one thread). The clients do not
 * decode the responses, so the benchmark process stays out of the way.
 */
export async function measureApi(config: BenchConfig, profiles: ProfileLog): Promise<Figure[]> {
  const { nodes, clients, requestsPerClient } = config.api;
  const dataDir = mkdtempSync(join(tmpdir(), "drover-bench-api-"));
  const store = openSqliteStore(dataDir, MIGRATIONS_DIR);
  await seedNodes(store, [{ version: 1, count: nodes }]);
  const { maxSurge, maxUnavailable } = config.plan;
  await seedSpec(store, { count: nodes, version: 1, maxSurge, maxUnavailable });
  await store.close();
  const server = await ServerProcess.start({ dataDir, args: [], profileDir: config.profileDir });
  try {
    const connections = Array.from({ length: clients }, () => server.rawClient());
    const listNodes = ListNodesRequest.encode(ListNodesRequest.fromPartial({ group: BENCH_GROUP })).finish();
    const dryRun = SetSpecRequest.encode(
      SetSpecRequest.fromPartial({ group: BENCH_GROUP, count: nodes, version: 2, maxSurge, maxUnavailable, dryRun: true }),
    ).finish();
    // Connect every client and let the server compile its paths before timing.
    await Promise.all(connections.map((connection) => server.rawUnary(connection, "ListNodes", listNodes)));
    await server.rawUnary(connections[0]!, "SetSpec", dryRun);
    const listed = await underLoad(server, connections, requestsPerClient, "ListNodes", listNodes);
    const planned = await underLoad(server, connections, requestsPerClient, "SetSpec", dryRun);
    await profiles.stop(server, "API under load");

    const size = `${nodes.toLocaleString("en-US")} nodes, ${clients} clients`;
    const served = (load: typeof listed) =>
      `${load.latencies.length} calls, ${load.perSecond.toFixed(0)}/s, ${(load.bytes / 1024 / 1024).toFixed(1)} MB each; server CPU ${(100 * load.serverBusy).toFixed(0)}% of a core`;
    const figure = (key: string, label: string, latencies: number[], q: number, note = ""): Figure => ({
      key,
      label,
      unit: "ms",
      value: quantile(latencies, q),
      runs: [quantile(latencies, q)],
      note,
    });
    return [
      figure("api.list_nodes_p50_ms", `API: ListNodes p50 (${size})`, listed.latencies, 0.5, served(listed)),
      figure("api.list_nodes_p99_ms", `API: ListNodes p99 (${size})`, listed.latencies, 0.99),
      figure("api.dry_run_p50_ms", `API: update dry run p50 (${size})`, planned.latencies, 0.5, served(planned)),
      figure("api.dry_run_p99_ms", `API: update dry run p99 (${size})`, planned.latencies, 0.99),
    ];
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
