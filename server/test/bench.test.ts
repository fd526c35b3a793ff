import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { temporaryDataDir } from "./support.js";

const BENCH = fileURLToPath(new URL("../bench/bench.js", import.meta.url));

/** Every figure `make bench` reports; one that stops being produced fails the test. */
const FIGURES = [
  "plan.small_ms",
  "plan.large_ms",
  "plan.ratio",
  "persist.change_ms",
  "persist.scale_up_ms",
  "dispatch.tasks_per_s",
  "dispatch.set_spec_ms",
  "dispatch.sqlite_ceiling_tasks_per_s",
  "dispatch.ceiling_ratio",
  "stream.one_watcher_events_per_s",
  "efficiency.independent",
  "efficiency.rolling",
  "stream.watchers_complete",
  "stream.lag_p50_ms",
  "stream.lag_p99_ms",
  "api.list_nodes_p50_ms",
  "api.list_nodes_p99_ms",
  "api.dry_run_p50_ms",
  "api.dry_run_p99_ms",
  "memory.peak_mb",
  "recovery.ms",
  "retention.run_ms",
  "retention.longest_step_ms",
  "client.summary_ms",
  "client.summary_peak_mb",
  "client.full_ms",
  "client.full_peak_mb",
  "client.full_ratio",
  "client.rolling_summary_ms",
  "client.rolling_summary_peak_mb",
  "client.rolling_full_ms",
  "client.rolling_full_peak_mb",
];

// Only that the program runs and produces every figure: times are never asserted.
describe("the benchmark program", () => {
  it("produces every figure as a finite number in its smoke mode, with the table and the JSON file", async (t) => {
    const output = join(temporaryDataDir(t), "bench-results.json");
    const { DROVER_BENCH_PROFILE: _profile, DROVER_BENCH_ONLY: _only, ...env } = process.env;
    const child = spawn(process.execPath, [BENCH], {
      env: { ...env, DROVER_BENCH_SMOKE: "1", DROVER_BENCH_OUTPUT: output },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 0, `the benchmark failed: ${stderr}`);

    const results = JSON.parse(readFileSync(output, "utf8")) as { smoke: boolean; commit: string; figures: { key: string; value: number }[] };
    assert.equal(results.smoke, true);
    assert.ok(results.commit.length > 0);
    assert.deepEqual(results.figures.map((figure) => figure.key).sort(), [...FIGURES].sort());
    for (const figure of results.figures) assert.ok(Number.isFinite(figure.value), `${figure.key} is ${figure.value}, not a finite number`);
    assert.match(stdout, /^Drover benchmark \(SMOKE/);
  });
});
