/**
 * Plans too large to list (issue 12, item 2): the real client against a real server prints a
 * summary of a 100,000-task plan in bounded memory, lists every task with --full, and sums up
 * a rolling update's lanes.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { assertExit, type ClientResult, lines, startServer, type TestServer } from "./harness.js";

const RESOURCE_USAGE = fileURLToPath(new URL("./resourceUsage.js", import.meta.url));
/** The bound for printing the summary of a 100,000-node plan. */
const MAX_CLIENT_RSS_MIB = 200;

/** Runs the client and reads how much memory the run took at its peak. */
async function measuredClient(server: TestServer, args: string[]): Promise<ClientResult & { maxRssMib: number }> {
  const dir = await mkdtemp(join(tmpdir(), "drover-usage-"));
  try {
    const file = join(dir, "usage.json");
    const result = await server.client(args, { NODE_OPTIONS: `--import=${RESOURCE_USAGE}`, RESOURCE_USAGE_FILE: file });
    const usage = JSON.parse(await readFile(file, "utf8")) as { maxRssKib: number };
    return { ...result, maxRssMib: usage.maxRssKib / 1024 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The rows of the table under the line that starts with `title`, each split into cells (continuation rows start with an empty cell). */
function rowsUnder(stdout: string, title: string): string[][] {
  const all = lines(stdout);
  const start = all.findIndex((line) => line.startsWith(title));
  assert.ok(start >= 0, `no line starting ${title} in:\n${stdout}`);
  const rows: string[][] = [];
  for (const line of all.slice(start + 1)) {
    if (line.trim() === "") break;
    rows.push(line.startsWith(" ") ? ["", ...line.trim().split(/\s{2,}/)] : line.split(/\s{2,}/));
  }
  return rows;
}

describe("plans too large to list", () => {
  let server: TestServer;
  before(async () => {
    // Parallelism 64 and short latencies: the 300-node group of the rolling test starts in about a second.
    server = await startServer(["--mock-latency", "5ms..15ms", "--parallelism", "64", "--retry-backoff", "10ms..50ms"]);
  });
  after(async () => {
    await server?.close();
  });

  test("update 100000 2 --dry-run prints a summary of its steps with ranges, under 200 MB of client memory", async () => {
    const result = await measuredClient(server, ["--group", "huge", "update", "100000", "2", "--dry-run"]);
    assertExit(result, 0);
    assert.deepEqual(lines(result.stdout), [
      "group huge: dry run, would create the group, 0 nodes → 100000 × v2 (max surge 0, max unavailable 1)",
      "min available 0, max alive 100000, no history to estimate its duration",
      "",
      "TASK GRAPH SPEC: 100,001 tasks in 2 steps (--full lists every task)",
      "STEP   IDS       AFTER   TASKS",
      "1      0-99999   -       100,000 × start_node v2, in parallel",
      "2      100000    1       do_nothing (a join)",
    ]);
    assert.ok(result.maxRssMib < MAX_CLIENT_RSS_MIB, `the client's peak memory was ${result.maxRssMib.toFixed(0)} MiB`);
  });

  test("update 100000 2 --dry-run --full lists every task, each row as narrow as its own cells", async () => {
    const result = await measuredClient(server, ["--group", "huge", "update", "100000", "2", "--dry-run", "--full"]);
    assertExit(result, 0);
    const all = lines(result.stdout);
    const head = all.indexOf("TASK GRAPH SPEC");
    assert.ok(head > 0, result.stdout.slice(0, 500));
    const rows = all.slice(head + 1);
    assert.equal(rows.length, 1 + 100_001, "a header and a row for each task");
    assert.equal(rows[0], "ID       PREREQS   ACTION");
    assert.equal(rows[1], "0        -         start_node version=2");
    assert.equal(rows.at(-1), "100000   0-99999   do_nothing");
    assert.ok(rows.every((row) => row.length <= 40), "no row is padded to a long cell");
    assert.ok(result.maxRssMib < MAX_CLIENT_RSS_MIB, `the client's peak memory was ${result.maxRssMib.toFixed(0)} MiB`);
  });

  test("a rolling update's summary groups its lanes by what they repeat, and tasks watch sums up a large graph by state", async () => {
    const group = ["--group", "lanes"];
    const scaleUp = await server.client([...group, "update", "300", "1"]);
    assertExit(scaleUp, 0);
    assert.ok(lines(scaleUp.stdout).includes("TASK GRAPH SPEC: 301 tasks in 2 steps (--full lists every task)"), scaleUp.stdout.slice(0, 800));

    const rolling = await server.client([...group, "update", "300", "2", "--max-surge", "2", "--max-unavailable", "2", "--dry-run"]);
    assertExit(rolling, 0);
    assert.deepEqual(rowsUnder(rolling.stdout, "TASK GRAPH SPEC: 601 tasks in 2 steps"), [
      ["STEP", "IDS", "AFTER", "TASKS"],
      ["1", "0-599", "-", "2 lanes, each 75 × (start_node v2 → shut_down_node)"],
      ["", "2 lanes, each 75 × (shut_down_node → start_node v2)"],
      ["2", "600", "1", "do_nothing (a join)"],
    ]);
    // The join waits for each lane's last task: a stepped range in the full list.
    const full = await server.client([...group, "update", "300", "2", "--max-surge", "2", "--max-unavailable", "2", "--dry-run", "--full"]);
    assertExit(full, 0);
    assert.equal(lines(full.stdout).at(-1), "600   593-599/2   do_nothing");

    const watch = await server.client([...group, "tasks", "watch"]);
    assertExit(watch, 0);
    assert.deepEqual(rowsUnder(watch.stdout, "TASKS: 301 tasks in 2 steps"), [
      ["STEP", "IDS", "AFTER", "TASKS", "STATE"],
      ["1", "0-299", "-", "300 × start_node v1, in parallel", "300 succeeded"],
      ["2", "300", "1", "do_nothing (a join)", "1 succeeded"],
    ]);
    const watchFull = await server.client([...group, "tasks", "watch", "--full"]);
    assertExit(watchFull, 0);
    const watchedRows = lines(watchFull.stdout).filter((line) => /^\d+ /.test(line));
    assert.equal(watchedRows.length, 301, "a row for each task");
    assert.match(watchedRows.at(-1)!, /^300 +0-299 +do_nothing +succeeded +0$/);
  });
});
