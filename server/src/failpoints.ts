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

export type Failpoint = (name: FailpointName) => void;

export const noFailpoints: Failpoint = () => {};

/** Parses `name[:n]`; refuses unknown names so a typo cannot make a crash test pass. */
export function failpointFromSetting(setting: string | undefined): Failpoint {
  if (!setting) return noFailpoints;
  const [name, countText] = setting.split(":");
  if (!(FAILPOINTS as readonly string[]).includes(name!)) {
    throw new Error(`DROVER_FAILPOINT ${JSON.stringify(setting)} names no failpoint: use one of ${FAILPOINTS.join(", ")}`);
  }
  const target = countText === undefined ? 1 : Number(countText);
  if (!Number.isInteger(target) || target < 1) {
    throw new Error(`DROVER_FAILPOINT ${JSON.stringify(setting)} has a bad count: write name:n with n a positive integer`);
  }
  let hits = 0;
  return (point) => {
    if (point === name && ++hits === target) process.kill(process.pid, "SIGKILL");
  };
}
