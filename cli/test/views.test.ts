/**
 * How the client shows a graph to other programs and a group's history to a person (issue
 * 12, items 18 and 19): DOT and Mermaid titled and coloured by state, and a history that fits
 * an 80-column terminal, with --wide for every column. The real client against a real server.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertExit, FAST_SERVER_FLAGS, graphIdIn, json, lines, startServer, table, type TestServer } from "./harness.js";

const SHORT_ID = /^[0-9A-Z]{6}…[0-9A-Z]{4}$/;

describe("graphs drawn by other programs", () => {
  let server: TestServer;
  let succeeded: string;
  let failed: string;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
    const group = ["--group", "colours"];
    const first = await server.client([...group, "update", "2", "1"]);
    assertExit(first, 0);
    succeeded = graphIdIn(first.stdout);
    // Every attempt outlives a 1ms timeout: the first task fails, and the rest are skipped.
    const second = await server.client([...group, "update", "2", "2", "--task-timeout", "1ms"]);
    assertExit(second, 1);
    failed = graphIdIn(second.stdout);
  });
  after(async () => {
    await server?.close();
  });

  test("DOT carries the graph's id and outcome as its title and fills each task with its state's colour", async () => {
    const dot = await server.client(["graphs", "show", failed, "--format", "dot"]);
    assertExit(dot, 0);
    const all = lines(dot.stdout);
    assert.equal(all[0], `digraph "graph ${failed}" {`);
    assert.match(all[1]!, new RegExp(`^ {2}label="graph ${failed}: group colours, revision 2, 2 × v2, failed: task 0 \\(shut_down_node [0-9A-Z]{26}\\) failed after 3 attempts: attempt timed out after 1ms";$`));
    assert.ok(all.includes("  labelloc=t;"));
    assert.match(dot.stdout, /subgraph "failed" \{\n {4}node \[fillcolor="#ffcdd2", color="#c62828"\];\n {4}t0 \[label="0: shut_down_node [0-9A-Z]{26}\\nfailed"\];\n {2}\}/);
    assert.match(dot.stdout, /subgraph "skipped" \{\n {4}node \[fillcolor="#e0e0e0", color="#757575"\];\n {4}t1 \[label="1: start_node version=2\\nskipped"\];\n {4}t2 /);
    assert.match(dot.stdout, /t2 -> t3;\n\}\n$/);

    const green = await server.client(["graphs", "show", succeeded, "--format", "dot"]);
    assert.match(green.stdout, new RegExp(`label="graph ${succeeded}: group colours, revision 1, 2 × v1, succeeded";`));
    assert.match(green.stdout, /subgraph "succeeded" \{\n {4}node \[fillcolor="#c8e6c9", color="#2e7d32"\];\n {4}t0 /);
  });

  test("Mermaid carries the same title in its front matter and puts each task in its state's class", async () => {
    const mermaid = await server.client(["graphs", "show", failed, "--format", "mermaid"]);
    assertExit(mermaid, 0);
    const all = lines(mermaid.stdout);
    assert.deepEqual(all.slice(0, 4).map((line) => line.replace(/ \(shut_down_node [0-9A-Z]{26}\).*"$/, ' (…)…"')), [
      "---",
      `title: "graph ${failed}: group colours, revision 2, 2 × v2, failed: task 0 (…)…"`,
      "---",
      "flowchart TD",
    ]);
    assert.ok(all.includes("  classDef failed fill:#ffcdd2,stroke:#c62828"), mermaid.stdout);
    assert.ok(all.includes("  classDef skipped fill:#e0e0e0,stroke:#757575"), mermaid.stdout);
    assert.match(mermaid.stdout, /\n {2}t0\["0: shut_down_node [0-9A-Z]{26}<br\/>failed"\]:::failed\n/);
    assert.match(mermaid.stdout, /\n {2}t3\["3: start_node version=2<br\/>skipped"\]:::skipped\n/);
  });
});

describe("history on an 80-column terminal", () => {
  let server: TestServer;
  const group = ["--group", "narrow"];
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
    const reserve = ["--cpu", "250m", "--memory", "16Mi"];
    assertExit(await server.client([...group, "update", "2", "1", ...reserve]), 0);
    // The same nodes with another strategy: a revision with nothing to do.
    assertExit(await server.client([...group, "update", "2", "1", ...reserve, "--max-surge", "1", "--task-timeout", "90s"]), 0);
    // A failed update, and the rollback its policy starts.
    const failing = ["--on-failure", "rollback", "--task-timeout", "1ms", "--progress-deadline", "10m"];
    assertExit(await server.client([...group, "update", "2", "2", ...reserve, ...failing]), 1);
  });
  after(async () => {
    await server?.close();
  });

  test("history fits 80 columns: the spec as 3 × v2, the graph's id shortened, no strategy or template", async () => {
    const result = await server.client([...group, "history"]);
    assertExit(result, 0);
    for (const line of lines(result.stdout)) assert.ok(line.length <= 80, `${line.length} characters: ${line}`);
    const [header, ...rows] = table(result.stdout);
    assert.deepEqual(header, ["REVISION", "SPEC", "REASON", "AGE", "GRAPH", "OUTCOME"]);
    assert.deepEqual(
      rows.map(([revision, spec, reason, , graph, outcome]) => [revision, spec, reason, graph === "-" ? "-" : SHORT_ID.test(graph!), outcome]),
      [
        ["4", "2 × v1", "auto-rollback to 2", true, "succeeded"],
        ["3", "2 × v2", "update", true, "failed"],
        ["2", "2 × v1", "update", "-", "nothing to do"],
        ["1", "2 × v1", "update", true, "succeeded"],
      ],
    );
    const stored = (await json(server, [...group, "history"])).revisions as Record<string, any>[];
    assert.equal(rows[0]![4], `${stored[0]!.graphId.slice(0, 6)}…${stored[0]!.graphId.slice(-4)}`, "the short id is the start and end of the whole one");
  });

  test("history --wide shows every column, the strategy, the whole graph id and the other graphs", async () => {
    const result = await server.client([...group, "history", "--wide"]);
    assertExit(result, 0);
    const [header, ...rows] = table(result.stdout);
    assert.deepEqual(header, ["REVISION", "COUNT", "VERSION", "STRATEGY", "REASON", "AGE", "GRAPH", "OUTCOME", "TEMPLATE", "OTHER GRAPHS"]);
    assert.deepEqual(
      rows.map((row) => [...row.slice(0, 5), /^[0-9A-Z]{26}$/.test(row[6]!) || row[6], ...row.slice(7)]),
      [
        ["4", "2", "1", "surge 1, unavailable 1, on failure stop, task timeout 1m30s, cpu 250m, memory 16Mi", "auto-rollback to 2", true, "succeeded", "default", "-"],
        ["3", "2", "2", "surge 0, unavailable 1, on failure rollback, task timeout 1ms, progress deadline 10m, cpu 250m, memory 16Mi", "update", true, "failed", "default", "-"],
        ["2", "2", "1", "surge 1, unavailable 1, on failure stop, task timeout 1m30s, cpu 250m, memory 16Mi", "update", "-", "nothing to do", "default", "-"],
        ["1", "2", "1", "surge 0, unavailable 1, on failure stop, cpu 250m, memory 16Mi", "update", true, "succeeded", "default", "-"],
      ],
    );
  });
});
