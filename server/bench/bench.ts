/**
 * `make bench`: Drover's benchmark. Starts real servers (child processes of the built
 * server program, fresh temporary data dirs) and measures the figures of issue 6, then
 * prints one table and writes the same as JSON.
 *
 * Environment:
 * - DROVER_BENCH_SMOKE=1: tiny sizes, one run each; proves the program works (the tests run it).
 * - DROVER_BENCH_OUTPUT: where the JSON goes (default: bench-results.json at the repo root).
 * - DROVER_BENCH_PROFILE=DIR: every server child runs under `node --cpu-prof` into DIR, and
 *   the top frames of each profile are printed after the table.
 * - DROVER_BENCH_ONLY=plan,dispatch,…: run only these figures (plan, persist, dispatch,
 *   efficiency, watchers, api, memory, recovery, retention, client).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { benchConfig, type BenchConfig } from "./BenchConfig.js";
import { type Figure, goalMet } from "./Figure.js";
import { describeCommit, describeMachine, type Machine } from "./machine.js";
import { measureApi } from "./measureApi.js";
import { measureClient } from "./measureClient.js";
import { measureDispatch } from "./measureDispatch.js";
import { measureEfficiency } from "./measureEfficiency.js";
import { measureMemory } from "./measureMemory.js";
import { measurePersist } from "./measurePersist.js";
import { measurePlan } from "./measurePlan.js";
import { measureRecovery } from "./measureRecovery.js";
import { measureRetention } from "./measureRetention.js";
import { measureWatchers } from "./measureWatchers.js";
import { formatProfile, ProfileLog, type ProfileSummary } from "./profileSummary.js";

const DEFAULT_OUTPUT = fileURLToPath(new URL("../../../bench-results.json", import.meta.url));

export const SECTIONS = ["plan", "persist", "dispatch", "efficiency", "watchers", "api", "memory", "recovery", "retention", "client"] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchResults {
  machine: Machine;
  commit: string;
  date: string;
  smoke: boolean;
  durationSeconds: number;
  /** The machine's 1-minute load average before and after: other work on it skews every figure. */
  loadAverage: { before: number; after: number };
  figures: (Figure & { met?: boolean })[];
  profiles: { figure: string; summary: ProfileSummary }[];
}

const measure: Record<Section, (config: BenchConfig, profiles: ProfileLog) => Figure[] | Promise<Figure[]>> = {
  plan: (config) => measurePlan(config),
  persist: (config) => measurePersist(config),
  dispatch: measureDispatch,
  efficiency: (config) => measureEfficiency(config),
  watchers: measureWatchers,
  api: measureApi,
  memory: measureMemory,
  recovery: measureRecovery,
  retention: (config) => measureRetention(config),
  client: measureClient,
};

export async function runBenchmark(config: BenchConfig, sections: readonly Section[] = SECTIONS, progress = (_line: string) => {}): Promise<BenchResults> {
  const started = performance.now();
  const loadBefore = loadavg()[0]!;
  const profiles = new ProfileLog(config.profileDir);
  const figures: Figure[] = [];
  for (const section of sections) {
    const sectionStarted = performance.now();
    progress(`${section}…`);
    figures.push(...(await measure[section](config, profiles)));
    progress(`${section} done in ${((performance.now() - sectionStarted) / 1000).toFixed(1)} s`);
  }
  return {
    machine: describeMachine(),
    commit: describeCommit(),
    date: new Date().toISOString(),
    smoke: config.smoke,
    durationSeconds: Math.round((performance.now() - started) / 1000),
    loadAverage: { before: loadBefore, after: loadavg()[0]! },
    // Tiny sizes say nothing about the goals.
    figures: figures.map((figure) => ({ ...figure, met: config.smoke ? undefined : goalMet(figure) })),
    profiles: profiles.summaries,
  };
}

/** A figure's value with a precision that suits its size. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatTable(results: BenchResults): string {
  const { machine } = results;
  const header = [
    `Drover benchmark${results.smoke ? " (SMOKE: tiny sizes, not a measurement)" : ""}`,
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGb} GB; ${machine.os}; Node ${machine.node}; SQLite ${machine.sqlite}`,
    `commit: ${results.commit}; ${results.date}; took ${results.durationSeconds} s; load average ${results.loadAverage.before.toFixed(2)} before, ${results.loadAverage.after.toFixed(2)} after`,
    "",
  ];
  const rows = results.figures.map((figure) => [
    figure.label,
    `${formatValue(figure.value)} ${figure.unit}`,
    figure.goal ? `${figure.goal.comparison === "at most" ? "≤" : "≥"} ${formatValue(figure.goal.target)}` : "",
    figure.met === undefined ? "" : figure.met ? "met" : "MISSED",
    figure.runs.length > 1 ? `median of ${figure.runs.length}` : "1 run",
    figure.note ?? "",
  ]);
  const titles = ["figure", "result", "goal", "", "runs", "notes"];
  const widths = titles.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === 1 || column === 2 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
      .join("  ")
      .trimEnd();
  return [...header, line(titles), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const smoke = process.env.DROVER_BENCH_SMOKE === "1";
  const profileDir = process.env.DROVER_BENCH_PROFILE ? resolve(process.env.DROVER_BENCH_PROFILE) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const only = process.env.DROVER_BENCH_ONLY?.split(",").map((name) => name.trim()).filter(Boolean);
  const unknown = only?.filter((name) => !(SECTIONS as readonly string[]).includes(name)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(`bench: DROVER_BENCH_ONLY names ${unknown.join(", ")}: choose from ${SECTIONS.join(", ")}\n`);
    process.exit(2);
  }
  const output = process.env.DROVER_BENCH_OUTPUT ?? DEFAULT_OUTPUT;
  const results = await runBenchmark(benchConfig(smoke, profileDir), (only as Section[] | undefined) ?? SECTIONS, (line) =>
    process.stderr.write(`bench: ${line}\n`),
  );
  process.stdout.write(formatTable(results) + "\n");
  for (const { figure, summary } of results.profiles) process.stdout.write(`\nprofile of the server in "${figure}": ${formatProfile(summary)}\n`);
  writeFileSync(output, JSON.stringify(results, null, 2) + "\n");
  process.stdout.write(`\nwritten to ${output}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: Error) => {
    process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}
