/**
 * `--max-surge 25%` and `--max-unavailable 25%`: kept as given in the revision, resolved
 * against the count in the plan (Kubernetes' rounding: surge up, unavailability down), and
 * shown both ways. The real client against a real server.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertExit, assertOneLineError, FAST_SERVER_FLAGS, json, lines, startServer, table, type TestServer } from "./harness.js";

describe("max surge and max unavailable as percents of count", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(() => server?.close());

  test("an update shows each percent resolved in its header and its preview, and history keeps the percent", async () => {
    const group = ["--group", "percent"];
    const first = await server.client([...group, "update", "10", "1", "--max-surge", "25%", "--max-unavailable", "25%"]);
    assertExit(first, 0);
    assert.equal(lines(first.stdout)[0], "group percent: creating the group, revision 1, 0 nodes → 10 × v1 (max surge 25% (3), max unavailable 25% (2))");

    const second = await server.client([...group, "update", "10", "2", "--max-surge", "25%", "--max-unavailable", "25%"]);
    assertExit(second, 0);
    assert.equal(lines(second.stdout)[0], "group percent: revision 2, 10 × v1 → 10 × v2 (max surge 25% (3), max unavailable 25% (2))");
    // The plan's own bounds: 10 − 2 available at the least, 10 + 3 alive at the most.
    assert.match(lines(second.stdout)[1]!, /^min available 8, max alive 13\b/);

    const [header, ...rows] = table((await server.client([...group, "history", "--wide"])).stdout);
    assert.equal(header![3], "STRATEGY");
    assert.ok(rows.every((row) => row[3]!.startsWith("surge 25%, unavailable 25%")), JSON.stringify(rows));
    const detail = (await server.client([...group, "history", "--revision", "2"])).stdout;
    assert.match(detail, /^MAX SURGE +25% \(3\)$/m);
    assert.match(detail, /^MAX UNAVAILABLE +25% \(2\)$/m);
    const [newest] = (await json(server, [...group, "history"])).revisions as Record<string, any>[];
    assert.deepEqual(
      [newest!.spec.maxSurge, newest!.spec.maxUnavailable, newest!.spec.maxSurgePercent, newest!.spec.maxUnavailablePercent],
      [3, 2, 25, 25],
    );
  });

  test("percents that both round to 0 leave one node unavailable, as Kubernetes does", async () => {
    const result = await server.client(["--group", "small", "update", "3", "1", "--max-surge", "0%", "--max-unavailable", "25%", "--dry-run"]);
    assertExit(result, 0);
    assert.equal(lines(result.stdout)[0], "group small: dry run, would create the group, 0 nodes → 3 × v1 (max surge 0% (0), max unavailable 25% (1))");
  });

  test("a percent above 100%, a fraction, and both bounds 0 in any form are usage errors", async () => {
    assertOneLineError(await server.client(["update", "3", "1", "--max-surge", "150%"]), 2, 'max surge "150%"', "0% to 100%");
    assertOneLineError(await server.client(["update", "3", "1", "--max-unavailable", "2.5%"]), 2, 'max unavailable "2.5%"');
    assertOneLineError(await server.client(["update", "3", "1", "--max-surge", "0%", "--max-unavailable", "0"]), 2, "both 0");
  });
});
