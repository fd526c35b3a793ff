import { readdirSync, readFileSync } from "node:fs";

/**
 * What the OS says about a process, read from /proc (Linux). A pid alone is not an identity
 * (pids are reused), so a process is known by its pid and its start time together.
 */

/** Clock ticks per second of /proc's times; 100 on every Linux this runs on (getconf CLK_TCK). */
const TICKS_PER_SECOND = 100;
const PAGE_SIZE = 4096;

export interface ProcessStat {
  pid: number;
  /** R, S, D, Z (zombie), T, … */
  state: string;
  /** User plus system CPU time, in clock ticks. */
  cpuTicks: number;
  /** When the process started, in clock ticks since boot: with the pid, its identity. */
  startTime: number;
  residentBytes: number;
}

/** Reads /proc/<pid>/stat, or undefined when no such process exists. */
export function readProcessStat(pid: number): ProcessStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 of stat(5).
  return {
    pid,
    state: fields[0]!,
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    startTime: Number(fields[19]),
    residentBytes: Number(fields[21]) * PAGE_SIZE,
  };
}

/** Whether the process with this pid and start time is alive (a zombie is not). */
export function isAlive(pid: number, startTime: number): boolean {
  const stat = readProcessStat(pid);
  return stat !== undefined && stat.startTime === startTime && stat.state !== "Z";
}

/** Seconds since boot, from /proc/uptime. */
export function systemUptimeSeconds(): number {
  return Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
}

/** How long a process has run, in milliseconds. */
export function processUptimeMs(stat: ProcessStat): number {
  return Math.max(0, Math.round((systemUptimeSeconds() - stat.startTime / TICKS_PER_SECOND) * 1000));
}

/** CPU use between two samples of one process, in percent of one core. */
export function cpuPercent(before: { cpuTicks: number; at: number }, after: { cpuTicks: number; at: number }): number {
  const elapsedSeconds = (after.at - before.at) / 1000;
  if (elapsedSeconds <= 0) return 0;
  return ((after.cpuTicks - before.cpuTicks) / TICKS_PER_SECOND / elapsedSeconds) * 100;
}

/**
 * The live processes whose environment holds `name=value`: how a node started just before
 * a crash, whose pid was never recorded, is found again.
 */
export function findProcessesByEnvironment(name: string, value: string): ProcessStat[] {
  const wanted = Buffer.from(`\0${name}=${value}\0`);
  const found: ProcessStat[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environment: Buffer;
    try {
      environment = readFileSync(`/proc/${entry}/environ`);
    } catch {
      continue;
    }
    // Framed by NULs on both sides so that OTHER_NAME=… or a longer value cannot match.
    if (!Buffer.concat([Buffer.from([0]), environment, Buffer.from([0])]).includes(wanted)) continue;
    const stat = readProcessStat(Number(entry));
    if (stat && stat.state !== "Z") found.push(stat);
  }
  return found;
}
