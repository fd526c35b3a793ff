import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** A V8 CPU profile as `node --cpu-prof` writes it (the fields read here). */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Where the time was spent in the function itself. */
  self: { frame: string; percent: number }[];
  /** Where the time was spent in the function or anything it called. */
  inclusive: { frame: string; percent: number }[];
}

/** The profile the process with this pid wrote into `dir`, if any. */
export function profileOf(dir: string, pid: number): string | undefined {
  const name = readdirSync(dir).find((file) => file.endsWith(".cpuprofile") && file.includes(`.${pid}.`));
  return name && join(dir, name);
}

/** The top frames of a CPU profile, by self and by inclusive time, as percentages of all samples. */
export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const frameOf = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url.replace(/^.*\/(node_modules|dist)\//, "$1/").replace(/^file:\/\//, "");
    return `${functionName || "(anonymous)"} ${where}${where ? `:${lineNumber + 1}` : ""}`;
  };
  const sampled = new Map<number, number>();
  profile.samples.forEach((id, i) => sampled.set(id, (sampled.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  let total = 0;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, micros] of sampled) {
    total += micros;
    const frame = frameOf(id);
    self.set(frame, (self.get(frame) ?? 0) + micros);
    const counted = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const caller = frameOf(at);
      if (counted.has(caller)) continue;
      counted.add(caller);
      inclusive.set(caller, (inclusive.get(caller) ?? 0) + micros);
    }
  }
  const ranked = (times: Map<string, number>) =>
    [...times]
      .filter(([frame]) => !frame.startsWith("(root)"))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, micros]) => ({ frame, percent: Math.round((1000 * micros) / total) / 10 }));
  return { file, totalMs: Math.round(total / 1000), self: ranked(self), inclusive: ranked(inclusive) };
}

export function formatProfile(summary: ProfileSummary): string {
  const lines = [`${summary.file} (${summary.totalMs} ms sampled)`, "  self:"];
  for (const { frame, percent } of summary.self) lines.push(`    ${percent.toFixed(1).padStart(5)}%  ${frame}`);
  lines.push("  inclusive:");
  for (const { frame, percent } of summary.inclusive) lines.push(`    ${percent.toFixed(1).padStart(5)}%  ${frame}`);
  return lines.join("\n");
}

// `node server/dist/bench/profileSummary.js FILE.cpuprofile [TOP]` prints a profile's top frames.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write("usage: profileSummary.js FILE.cpuprofile [TOP]\n");
    process.exit(2);
  }
  process.stdout.write(formatProfile(summarizeProfile(file, Number(top ?? 15))) + "\n");
}

/** The profiles of the server children of one benchmark run, by figure. */
export class ProfileLog {
  readonly summaries: { figure: string; summary: ProfileSummary }[] = [];

  constructor(readonly dir: string | undefined) {}

  /** Stops the server and, when profiling, keeps the summary of the profile it wrote on exit. */
  async stop(server: { stop(): Promise<void>; child: { pid?: number } }, figure: string): Promise<void> {
    await server.stop();
    if (!this.dir || server.child.pid === undefined) return;
    const file = profileOf(this.dir, server.child.pid);
    if (file) this.summaries.push({ figure, summary: summarizeProfile(file) });
  }
}
