/**
 * Failpoints make the server die abruptly at a named point, so tests can check that a
 * crash at that instant loses nothing and duplicates nothing.
 *
 * `DROVER_FAILPOINT=<name>[:<n>]` kills the process (SIGKILL, no clean-up) on the n-th time
 * (default the first) execution reaches the named point. The points:
 */
export const FAILPOINTS = [
  "revision.before-commit",
  "revision.after-commit",
  "journal.before-commit",
  "journal.after-commit",
  "driver.before-start",
  "driver.after-start",
  "driver.before-stop",
  "driver.after-stop",
] as const;
export type FailpointName = (typeof FAILPOINTS)[number];

/**
 * Delay points hold execution up at a named point, so that a test can act inside a window
 * too short to hit otherwise (a call that arrives while recovery runs).
 *
 * `DROVER_FAILPOINT=<name>[:<n>]=sleep(<ms>)` waits there ms milliseconds on the n-th time
 * (default the first). A shutdown cuts the wait short with an abort error, as it does every
 * wait of the server's. The points:
 */
export const DELAY_POINTS = [
  // Reached under each group's lock, before recovery reads the group's unsettled graphs.
  "recovery.before-resume",
] as const;
export type DelayPointName = (typeof DELAY_POINTS)[number];

export type Failpoint = (name: FailpointName) => void;
export type DelayPoint = (name: DelayPointName, signal: AbortSignal) => Promise<void>;

export const noFailpoints: Failpoint = () => {};
export const noDelays: DelayPoint = async () => {};

interface Setting {
  name: string;
  /** Which time the point is reached that acts (1: the first). */
  target: number;
  /** Sleep this long there, instead of dying. */
  sleepMs?: number;
}

/** Parses `name[:n][=sleep(ms)]`; refuses unknown names so a typo cannot make a crash test pass. */
function parseSetting(setting: string): Setting {
  const [point, action] = splitOnce(setting, "=");
  const [name, countText] = point.split(":");
  const sleepMs = action === undefined ? undefined : sleepOf(setting, action);
  const names: readonly string[] = sleepMs === undefined ? FAILPOINTS : DELAY_POINTS;
  if (!names.includes(name!)) {
    const known = sleepMs === undefined ? `use one of ${FAILPOINTS.join(", ")}, or name=sleep(ms) with one of ${DELAY_POINTS.join(", ")}` : `sleep only at ${DELAY_POINTS.join(", ")}`;
    throw new Error(`DROVER_FAILPOINT ${JSON.stringify(setting)} names no ${sleepMs === undefined ? "failpoint" : "delay point"}: ${known}`);
  }
  const target = countText === undefined ? 1 : Number(countText);
  if (!Number.isInteger(target) || target < 1) {
    throw new Error(`DROVER_FAILPOINT ${JSON.stringify(setting)} has a bad count: write name:n with n a positive integer`);
  }
  return { name: name!, target, sleepMs };
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}

function sleepOf(setting: string, action: string): number {
  const match = /^sleep\((\d+)\)$/.exec(action);
  if (!match) throw new Error(`DROVER_FAILPOINT ${JSON.stringify(setting)} has a bad action: the only one is sleep(ms), as in recovery.before-resume=sleep(2000)`);
  return Number(match[1]);
}

/** The failpoint a `DROVER_FAILPOINT` setting arms: it kills the process at the named point. */
export function failpointFromSetting(setting: string | undefined): Failpoint {
  if (!setting) return noFailpoints;
  const { name, target, sleepMs } = parseSetting(setting);
  if (sleepMs !== undefined) return noFailpoints;
  let hits = 0;
  return (point) => {
    if (point === name && ++hits === target) process.kill(process.pid, "SIGKILL");
  };
}

/** The delay a `DROVER_FAILPOINT` setting arms: it sleeps at the named point. */
export function delayPointFromSetting(setting: string | undefined, sleep: (milliseconds: number, signal: AbortSignal) => Promise<void>): DelayPoint {
  if (!setting) return noDelays;
  const { name, target, sleepMs } = parseSetting(setting);
  if (sleepMs === undefined) return noDelays;
  let hits = 0;
  return async (point, signal) => {
    if (point === name && ++hits === target) await sleep(sleepMs, signal);
  };
}
