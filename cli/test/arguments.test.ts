import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  EventType,
  FailurePolicy,
  type Graph,
  GraphReason,
  GraphState,
  HealthCheckType,
  Node,
  NodeState,
  NodeTemplate,
  SetSpecResponse,
  MAX_COUNT,
  Revision,
  RevisionReason,
  Spec,
  TaskAction,
  TaskState,
} from "@drover/shared";
import fc from "fast-check";
import { resolveGlobalOptions } from "../src/connection.js";
import { UsageError } from "../src/errors.js";
import { graphsListRequest, steerRequest } from "../src/graphs.js";
import { setTemplateRequest } from "../src/group.js";
import { historyRequest } from "../src/history.js";
import { nodesLogsRequest } from "../src/nodes.js";
import {
  actionText,
  bytesText,
  crashLoopLine,
  eventLine,
  lastStateText,
  nodeDescribeLines,
  nodesTable,
  previewLine,
  progressText,
  rollbackHeader,
  rolledBackLine,
  shellWord,
  specTemplateLine,
  summaryLines,
  templateRows,
  updateHeader,
} from "../src/render.js";
import { nodeStateColor, stateColor } from "../src/palette.js";
import { historyTable, revisionChanges, revisionRows } from "../src/render/history.js";
import { planTable, taskTable } from "../src/render/plan.js";
import { rollbackRequest } from "../src/rollback.js";
import { graphIdArgument } from "../src/tasks.js";
import { GraphTracker } from "../src/tracker.js";
import { type UpdateArguments, type UpdateRequest, updateRequest } from "../src/update.js";

const plain = { color: false };

describe("arguments to requests", () => {
  test("update accepts every count from 0 to 100000 written in digits", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_COUNT }), (count) => {
        assert.equal(updateRequest({ count: String(count), version: "1" }, "default").count, count);
      }),
    );
  });

  test("update refuses any count that is not digits alone, naming it", () => {
    fc.assert(
      fc.property(fc.string().filter((text) => !/^\d+$/.test(text)), (text) => {
        assert.throws(() => updateRequest({ count: text, version: "1" }, "default"), (error: unknown) => {
          assert.ok(error instanceof UsageError);
          assert.ok(error.message.startsWith(`count ${JSON.stringify(text)} is invalid`));
          return true;
        });
      }),
    );
  });

  test("update leaves surge and unavailability to the server unless given, and names every bad value at once", () => {
    assert.deepEqual(updateRequest({ count: "3", version: "2" }, "web"), {
      group: "web",
      count: 3,
      version: 2,
      maxSurge: undefined,
      maxSurgePercent: undefined,
      maxUnavailable: undefined,
      maxUnavailablePercent: undefined,
      dryRun: false,
      expectRevision: undefined,
      onFailure: FailurePolicy.FAILURE_POLICY_UNSPECIFIED,
      taskTimeoutMs: 0,
      progressDeadlineMs: 0,
      cpuMillis: 0,
      memoryMb: 0,
      template: undefined,
      minReadyMs: undefined,
      canary: 0,
      autoPromoteAfterMs: 0,
    });
    assert.throws(() => updateRequest({ count: "x", version: "y" }, "web"), /count "x" is invalid.*; version "y" is invalid/);
    assert.throws(() => updateRequest({ count: "3", version: "2", maxUnavailable: "0" }, "web"), /both 0/);
    assert.doesNotThrow(() => updateRequest({ count: "3", version: "2", maxSurge: "1", maxUnavailable: "0" }, "web"));
    // A percent goes in its own field; the server resolves it against the count.
    const percent = updateRequest({ count: "10", version: "2", maxSurge: "25%", maxUnavailable: "1" }, "web");
    assert.deepEqual([percent.maxSurge, percent.maxSurgePercent, percent.maxUnavailable, percent.maxUnavailablePercent], [undefined, 25, 1, undefined]);
    assert.throws(() => updateRequest({ count: "3", version: "2", maxSurge: "0%", maxUnavailable: "0%" }, "web"), /both 0/);
  });

  test("update reads the failure policy, durations with a unit, and the revision it expects, naming every bad one", () => {
    const request = updateRequest(
      { count: "3", version: "2", onFailure: "rollback", taskTimeout: "1.5s", progressDeadline: "5m", expectRevision: "0" },
      "web",
    );
    assert.equal(request.onFailure, FailurePolicy.FAILURE_POLICY_ROLLBACK);
    assert.equal(request.taskTimeoutMs, 1500);
    assert.equal(request.progressDeadlineMs, 300_000);
    assert.equal(request.expectRevision, 0);
    assert.equal(updateRequest({ count: "3", version: "2", onFailure: "stop" }, "web").onFailure, FailurePolicy.FAILURE_POLICY_STOP);
    for (const zero of ["0", "0ms", "0s"]) assert.equal(updateRequest({ count: "3", version: "2", taskTimeout: zero }, "web").taskTimeoutMs, 0);
    assert.equal(updateRequest({ count: "3", version: "2", taskTimeout: "24h" }, "web").taskTimeoutMs, 86_400_000);
    assert.equal(updateRequest({ count: "3", version: "2", taskTimeout: "1d" }, "web").taskTimeoutMs, 86_400_000, "days, as the server's flags take them");
    assert.equal(updateRequest({ count: "3", version: "2", taskTimeout: "1h30m" }, "web").taskTimeoutMs, 5_400_000, "a compound duration");
    for (const bad of ["30", "1.5ms", "-1s", "2d", "1d1s", "30m1h", "s", " 1s", "25h"]) {
      assert.throws(() => updateRequest({ count: "3", version: "2", taskTimeout: bad }, "web"), new RegExp(`task timeout ${JSON.stringify(bad)} is invalid`));
    }
    assert.throws(
      () => updateRequest({ count: "3", version: "2", onFailure: "retry", progressDeadline: "soon", expectRevision: "-1" }, "web"),
      /expect revision "-1" is invalid.*; on failure "retry" is invalid: use stop or rollback; progress deadline "soon" is invalid/,
    );
    assert.throws(() => updateRequest({ count: "3", version: "2", onFailure: "constructor" }, "web"), /on failure "constructor" is invalid/);
  });

  test("update reads cpu as millicores or cores and memory as MiB, GiB or TiB, refusing what is not whole or too much", () => {
    const reserved = (cpu?: string, memory?: string) => {
      const request = updateRequest({ count: "1", version: "1", cpu, memory }, "web");
      return [request.cpuMillis, request.memoryMb];
    };
    assert.deepEqual(reserved("500m", "256Mi"), [500, 256]);
    assert.deepEqual(reserved("0.5", "1Gi"), [500, 1024]);
    assert.deepEqual(reserved("2", "1.5Gi"), [2000, 1536]);
    assert.deepEqual(reserved("1024", "1Ti"), [1_024_000, 1_048_576]);
    assert.deepEqual(reserved("0", "512"), [0, 512]);
    assert.deepEqual(reserved(undefined, undefined), [0, 0]);
    for (const bad of ["0.0005", "1025", "-1", "500 m", "1.5m", "m", "2c"]) {
      assert.throws(() => reserved(bad), new RegExp(`cpu ${JSON.stringify(bad)} is invalid: write millicores like 500m`));
    }
    for (const bad of ["256M", "1G", "0.5Mi", "1.0001Gi", "2Ti", "-1", "1 Gi"]) {
      assert.throws(() => reserved(undefined, bad), new RegExp(`memory ${JSON.stringify(bad)} is invalid: write a whole number of MiB`));
    }
  });

  test("node ids are case-insensitive ULIDs; --tail counts lines (0: none, -1: all), --since is a duration, --timestamps asks for times", () => {
    const request = nodesLogsRequest("01arz3ndektsv4rrffq69g5fav", { follow: true, tail: "100", since: "1h30m", timestamps: true });
    assert.deepEqual(request, { nodeId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", follow: true, tailBytes: 0, tailLines: 100, sinceMs: 5_400_000, timestamps: true });
    assert.deepEqual(nodesLogsRequest("01ARZ3NDEKTSV4RRFFQ69G5FAV", {}), { nodeId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", follow: false, tailBytes: 0, tailLines: undefined, sinceMs: 0, timestamps: false }, "the server's default: its last 64 KiB");
    assert.equal(nodesLogsRequest("01ARZ3NDEKTSV4RRFFQ69G5FAV", { tail: "0" }).tailLines, 0);
    assert.equal(nodesLogsRequest("01ARZ3NDEKTSV4RRFFQ69G5FAV", { tail: "-1" }).tailLines, -1);
    assert.throws(() => nodesLogsRequest("01ARZ3NDEKTSV4RRFFQ69G5FAU!", {}), /node id "01ARZ3NDEKTSV4RRFFQ69G5FAU!" is invalid: give the whole id \(a 26-character ULID\), at least its first 4 characters, or its short form/);
    for (const bad of ["-2", "ten", "1.5", " 3"]) {
      assert.throws(() => nodesLogsRequest("01ARZ3NDEKTSV4RRFFQ69G5FAV", { tail: bad }), new RegExp(`tail ${JSON.stringify(bad)} is invalid: write a number of lines from 0, or -1 for the whole log`));
    }
    assert.throws(() => nodesLogsRequest("01ARZ3NDEKTSV4RRFFQ69G5FAV", { since: "10" }), /since "10" is invalid: a number needs a unit/);
    assert.throws(() => nodesLogsRequest("01ARZ3NDEKTSV4RRFFQ69G5FAV", { since: "0s", tail: "x" }), /tail "x" is invalid.*; since "0s" is invalid: it must be more than 0/);
  });

  test("set-template keeps args in order, leaves unset fields to the server's defaults, and names every bad flag", () => {
    const request = setTemplateRequest(
      { command: "node", arg: ["chat.mjs", "--port", "{port}"], env: ["GREETING=a=b", "EMPTY="], health: "http", healthPath: "/ready", stopGrace: "2s" },
      "web",
    );
    assert.deepEqual(request, {
      group: "web",
      template: {
        command: "node",
        args: ["chat.mjs", "--port", "{port}"],
        env: { GREETING: "a=b", EMPTY: "" },
        healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "/ready", intervalMs: 0, timeoutMs: 0, failureThreshold: 0, startTimeoutMs: 0 },
        stopGraceMs: 2000,
      },
      templatePatch: undefined,
    });
    assert.equal(setTemplateRequest({ command: "x", health: "none" }, "web").template!.healthCheck!.type, HealthCheckType.HEALTH_CHECK_TYPE_NONE);
    assert.throws(
      () =>
        setTemplateRequest(
          { command: " ", env: ["PORT=1", "A=1", "A=2"], health: "grpc", healthInterval: "10ms", healthThreshold: "101", startTimeout: "2h", stopGrace: "30" },
          "web",
        ),
      /^UsageError: command is empty.*; env PORT is set by the server.*; env A is given twice.*; health "grpc" is invalid: use http, tcp or none; health interval "10ms" is invalid: it must be from 100ms to 1h.*; health threshold "101" is invalid.*; start timeout "2h" is invalid.*; stop grace "30" is invalid/,
    );
    assert.throws(() => setTemplateRequest({ command: "x", healthPath: "healthz" }, "web"), /health path "healthz" is invalid: write a path starting with '\/'/);
    assert.throws(() => setTemplateRequest({ command: "x", health: "tcp", healthPath: "/healthz" }, "web"), /health path "\/healthz" is given with --health tcp/);
  });

  test("rollback takes a revision from 1, or none for the last one whose rollout succeeded, and --with-count", () => {
    assert.deepEqual(rollbackRequest({}, "web"), { group: "web", revision: 0, expectRevision: undefined, dryRun: false, withCount: false });
    assert.deepEqual(rollbackRequest({ revision: "3", expectRevision: "5", dryRun: true, withCount: true }, "web"), {
      group: "web",
      revision: 3,
      expectRevision: 5,
      dryRun: true,
      withCount: true,
    });
    assert.throws(() => rollbackRequest({ revision: "0" }, "web"), /revision "0" is invalid: it must be an integer from 1/);
    assert.throws(() => rollbackRequest({ revision: "last", expectRevision: "x" }, "web"), /revision "last" is invalid.*; expect revision "x" is invalid/);
    assert.throws(() => historyRequest({ limit: "0" }, "web"), /limit "0" is invalid/);
  });

  test("update reads min-ready (0 is sent, absent is not), a canary and its auto-promote, naming every bad one", () => {
    const cases: { args: Partial<UpdateArguments>; expected?: Pick<UpdateRequest, "minReadyMs" | "canary" | "autoPromoteAfterMs">; error?: RegExp }[] = [
      { args: {}, expected: { minReadyMs: undefined, canary: 0, autoPromoteAfterMs: 0 } },
      { args: { minReady: "10s" }, expected: { minReadyMs: 10_000, canary: 0, autoPromoteAfterMs: 0 } },
      { args: { minReady: "0" }, expected: { minReadyMs: 0, canary: 0, autoPromoteAfterMs: 0 } },
      { args: { minReady: "1.5m", canary: "2" }, expected: { minReadyMs: 90_000, canary: 2, autoPromoteAfterMs: 0 } },
      { args: { canary: "2", autoPromoteAfter: "5m" }, expected: { minReadyMs: undefined, canary: 2, autoPromoteAfterMs: 300_000 } },
      { args: { canary: "0" }, expected: { minReadyMs: undefined, canary: 0, autoPromoteAfterMs: 0 } },
      { args: { minReady: "10" }, error: /^UsageError: min ready "10" is invalid: a number needs a unit .*\(0 for no wait\)$/ },
      { args: { minReady: "25h" }, error: /min ready "25h" is invalid: it must be at most a day \(24h\), or 0 for no wait/ },
      { args: { canary: "-1" }, error: /canary "-1" is invalid: it must be an integer from 0 to 100000/ },
      { args: { canary: "two" }, error: /canary "two" is invalid/ },
      { args: { autoPromoteAfter: "5m" }, error: /auto promote after "5m" is given without --canary: it times the promote gate, which only a canary has/ },
      { args: { canary: "0", autoPromoteAfter: "5m" }, error: /auto promote after "5m" is given without --canary/ },
      { args: { canary: "1", autoPromoteAfter: "soon" }, error: /auto promote after "soon" is invalid/ },
      { args: { minReady: "x", canary: "y" }, error: /min ready "x" is invalid.*; canary "y" is invalid/ },
    ];
    for (const { args, expected, error } of cases) {
      const build = () => updateRequest({ count: "3", version: "2", ...args }, "web");
      if (error) {
        assert.throws(build, (thrown: unknown) => thrown instanceof UsageError && error.test(`UsageError: ${thrown.message}`), JSON.stringify(args));
      } else {
        const { minReadyMs, canary, autoPromoteAfterMs } = build();
        assert.deepEqual({ minReadyMs, canary, autoPromoteAfterMs }, expected, JSON.stringify(args));
      }
    }
  });

  test("update sends a whole template when any template flag is given, read as set-template reads it, and none otherwise", () => {
    const health = (fields: Partial<NodeTemplate["healthCheck"] & object> = {}) => ({
      type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP,
      path: "",
      intervalMs: 0,
      timeoutMs: 0,
      failureThreshold: 0,
      startTimeoutMs: 0,
      ...fields,
    });
    const cases: { args: Partial<UpdateArguments>; template?: NodeTemplate; error?: RegExp }[] = [
      { args: {}, template: undefined },
      { args: { command: "node" }, template: { command: "node", args: [], env: {}, healthCheck: health(), stopGraceMs: 0 } },
      {
        args: { command: "node", arg: ["chat.mjs", "{port}"], env: ["MODE=prod"], health: "tcp", startTimeout: "30s", stopGrace: "2s" },
        template: { command: "node", args: ["chat.mjs", "{port}"], env: { MODE: "prod" }, healthCheck: health({ type: HealthCheckType.HEALTH_CHECK_TYPE_TCP, startTimeoutMs: 30_000 }), stopGraceMs: 2000 },
      },
      { args: { command: "./api", healthPath: "/ready", healthInterval: "500ms" }, template: { command: "./api", args: [], env: {}, healthCheck: health({ path: "/ready", intervalMs: 500 }), stopGraceMs: 0 } },
      { args: { arg: ["chat.mjs"] }, error: /^command is missing: --arg sets the node template, which replaces the whole template and so needs --command/ },
      { args: { env: ["A=1"], stopGrace: "1s" }, error: /^command is missing: --env, --stop-grace set the node template/ },
      { args: { health: "none" }, error: /^command is missing: --health sets/ },
      { args: { command: "" }, error: /^command is empty: name the program each node runs$/ },
      { args: { command: "node", env: ["PORT=1"] }, error: /^env PORT is set by the server for each node/ },
      { args: { command: "node", health: "tcp", healthPath: "/x" }, error: /^health path "\/x" is given with --health tcp/ },
      { args: { healthThreshold: "0", count: "x" } as Partial<UpdateArguments>, error: /^count "x" is invalid.*; command is missing: --health-threshold sets.*; health threshold "0" is invalid/ },
    ];
    for (const { args, template, error } of cases) {
      const build = () => updateRequest({ count: "3", version: "2", ...args }, "web");
      if (error) {
        assert.throws(build, (thrown: unknown) => thrown instanceof UsageError && error.test(thrown.message), JSON.stringify(args));
      } else {
        assert.deepEqual(build().template, template, JSON.stringify(args));
      }
    }
  });

  test("history takes --revision from 1, which reads the newest 1000 revisions, and refuses it with --limit", () => {
    assert.deepEqual(historyRequest({}, "web"), { request: { group: "web", limit: 0 } });
    assert.deepEqual(historyRequest({ limit: "5" }, "web"), { request: { group: "web", limit: 5 } });
    assert.deepEqual(historyRequest({ revision: "4" }, "web"), { request: { group: "web", limit: 1000 }, revision: 4 });
    assert.throws(() => historyRequest({ revision: "0" }, "web"), /revision "0" is invalid: it must be an integer from 1/);
    assert.throws(() => historyRequest({ revision: "4", limit: "5" }, "web"), /--limit and --revision are given together/);
    assert.throws(() => historyRequest({ revision: "x", limit: "0" }, "web"), /limit "0" is invalid.*; revision "x" is invalid.*; --limit and --revision/);
  });

  test("graphs cancel, pause, resume and promote take a graph id, a prefix or a short form, or none for the group's graph in progress", () => {
    assert.deepEqual(steerRequest(undefined, "web"), { graphId: "", group: "web" });
    assert.deepEqual(steerRequest("01arz3ndektsv4rrffq69g5fav", "web"), { graphId: "01ARZ3NDEKTSV4RRFFQ69G5FAV", group: "web" });
    assert.deepEqual(steerRequest("01arz3", "web"), { graphId: "01ARZ3", group: "web" });
    assert.deepEqual(steerRequest("01ARZ3...5FAV", "web"), { graphId: "01ARZ3…5FAV", group: "web" });
    assert.throws(() => steerRequest("latest", "web"), /graph id "latest" is invalid/);
    assert.throws(() => steerRequest("01A", "web"), /graph id "01A" is too short/);
  });

  test("global options are checked: server address, group name, output format", () => {
    const { server, group, output } = resolveGlobalOptions({});
    assert.deepEqual({ server, group, output }, { server: "127.0.0.1:8888", group: "default", output: "table" });
    assert.throws(() => resolveGlobalOptions({ server: "localhost" }), /server "localhost" is invalid/);
    assert.throws(() => resolveGlobalOptions({ server: "localhost:99999" }), /server "localhost:99999" is invalid/);
    assert.throws(() => resolveGlobalOptions({ group: "-web" }), /group "-web" is invalid/);
    assert.throws(() => resolveGlobalOptions({ output: "yaml" }), /output "yaml" is invalid/);
  });

  test("graph ids are case-insensitive ULIDs, or prefixes of them; limits are 1 to 1000", () => {
    assert.equal(graphIdArgument("01arz3ndektsv4rrffq69g5fav"), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert.equal(graphIdArgument("01ARZ3NDEKTSV4RRFFQ69G5FA"), "01ARZ3NDEKTSV4RRFFQ69G5FA");
    assert.throws(() => graphIdArgument("01ARZ3NDEKTSV4RRFFQ69G5FAV0"), /graph id "01ARZ3NDEKTSV4RRFFQ69G5FAV0" is invalid/);
    assert.deepEqual(graphsListRequest({}, "web"), { group: "web", limit: 0 });
    assert.throws(() => graphsListRequest({ limit: "1001" }, "web"), /limit "1001" is invalid/);
  });
});

function graph(): Graph {
  const task = (id: number, prerequisites: number[], action: TaskAction, extra: { nodeId?: string; version?: number } = {}) => ({
    id,
    prerequisites,
    action,
    nodeId: extra.nodeId ?? "",
    version: extra.version ?? 0,
    state: TaskState.TASK_STATE_PENDING,
    attempts: 0,
    error: "",
    startedAt: undefined,
    finishedAt: undefined,
    waiting: "",
    revision: 0,
  });
  return {
    id: "01JDX4ZQ8M6V1Y2K3N4P5Q6R7S",
    group: "default",
    revision: 2,
    spec: { count: 1, version: 2, maxSurge: 0, maxUnavailable: 1 } as Graph["spec"],
    state: GraphState.GRAPH_STATE_PENDING,
    tasks: [
      task(0, [], TaskAction.TASK_ACTION_SHUT_DOWN_NODE, { nodeId: "01JDX3AAAAAAAAAAAAAAAAQ1R7" }),
      task(1, [0], TaskAction.TASK_ACTION_START_NODE, { version: 2 }),
    ],
    counts: undefined,
    createdAt: new Date(0),
    startedAt: undefined,
    finishedAt: undefined,
    error: "",
    sequence: 0,
    retries: 0,
  } as Graph;
}

function event(sequence: number, fields: Record<string, unknown>) {
  return {
    sequence,
    time: new Date(1000 + sequence * 100),
    type: EventType.EVENT_TYPE_TASK,
    group: "default",
    graphId: "01JDX4ZQ8M6V1Y2K3N4P5Q6R7S",
    taskId: 0,
    nodeId: "",
    graphState: GraphState.GRAPH_STATE_UNSPECIFIED,
    taskState: TaskState.TASK_STATE_UNSPECIFIED,
    nodeState: 0,
    action: TaskAction.TASK_ACTION_UNSPECIFIED,
    version: 0,
    attempt: 0,
    error: "",
    retryDelayMs: 0,
    ...fields,
  } as Parameters<GraphTracker["apply"]>[0];
}

describe("following a graph", () => {
  test("the tracker applies each event once, learns node ids, counts retries and the final state", () => {
    const tracker = new GraphTracker(graph(), 0);
    const events = [
      event(1, { type: EventType.EVENT_TYPE_GRAPH, graphState: GraphState.GRAPH_STATE_RUNNING }),
      event(2, { taskState: TaskState.TASK_STATE_RUNNING, attempt: 1 }),
      event(3, { taskState: TaskState.TASK_STATE_SUCCEEDED }),
      event(4, { taskId: 1, taskState: TaskState.TASK_STATE_RUNNING, attempt: 1, nodeId: "01JDX5BBBBBBBBBBBBBBBB8JNE" }),
      event(5, { taskId: 1, type: EventType.EVENT_TYPE_TASK_RETRY, error: "boom", retryDelayMs: 400 }),
      event(6, { taskId: 1, taskState: TaskState.TASK_STATE_RUNNING, attempt: 2 }),
      event(7, { taskId: 1, taskState: TaskState.TASK_STATE_SUCCEEDED }),
      event(8, { type: EventType.EVENT_TYPE_GRAPH, graphState: GraphState.GRAPH_STATE_SUCCEEDED }),
    ];
    for (const each of events) assert.equal(tracker.apply(each), true);
    for (const each of events) assert.equal(tracker.apply(each), false, "a repeated event changes nothing");
    assert.equal(tracker.state, GraphState.GRAPH_STATE_SUCCEEDED);
    assert.equal(tracker.retries, 1);
    assert.equal(tracker.task(1)!.nodeId, "01JDX5BBBBBBBBBBBBBBBB8JNE");
    assert.equal(tracker.task(1)!.attempts, 2);
    assert.deepEqual(summaryLines(plain, tracker), ["graph 01JDX4ZQ8M6V1Y2K3N4P5Q6R7S succeeded in 700ms: 2 tasks, 1 retry"]);
  });

  test("event lines give the time since the start, the task, what happened and the action", () => {
    const tracker = new GraphTracker(graph(), 0);
    const base = new Date(1000);
    const retry = event(5, { taskId: 1, type: EventType.EVENT_TYPE_TASK_RETRY, error: "boom", retryDelayMs: 400, nodeId: "01JDX5BBBBBBBBBBBBBBBB8JNE" });
    tracker.apply(retry);
    assert.equal(eventLine(plain, retry, tracker, base), " +0.50s  1  retrying in 400ms  start_node version=2 01JDX5…8JNE  error: boom");
    const again = event(6, { taskId: 1, taskState: TaskState.TASK_STATE_RUNNING, attempt: 2 });
    tracker.apply(again);
    assert.equal(eventLine(plain, again, tracker, base), " +0.60s  1  started (attempt 2)  start_node version=2 01JDX5…8JNE");
    assert.equal(eventLine(plain, event(7, { type: EventType.EVENT_TYPE_GRAPH, graphState: GraphState.GRAPH_STATE_RUNNING }), tracker, base), undefined);
    assert.equal(actionText(tracker.task(0)!, { shortIds: false }), "shut_down_node 01JDX3AAAAAAAAAAAAAAAAQ1R7");
  });
});

describe("rendering decisions and history", () => {
  test("a failed graph's summary says what the server decided and how to watch the graph it started", () => {
    const tracker = new GraphTracker(graph(), 0);
    tracker.apply(event(1, { type: EventType.EVENT_TYPE_GRAPH, graphState: GraphState.GRAPH_STATE_RUNNING }));
    tracker.apply(
      event(2, {
        type: EventType.EVENT_TYPE_GRAPH,
        graphState: GraphState.GRAPH_STATE_FAILED,
        error: "task 0 (shut_down_node 01JDX3AAAAAAAAAAAAAAAAQ1R7) failed after 1 attempt: boom",
        message: "rolling back to revision 1 (2 × v1)",
        nextGraphId: "01JDX6CCCCCCCCCCCCCCCCCCCC",
      }),
    );
    assert.deepEqual(summaryLines(plain, tracker).slice(1), [
      "error: task 0 (shut_down_node 01JDX3AAAAAAAAAAAAAAAAQ1R7) failed after 1 attempt: boom",
      "rolling back to revision 1 (2 × v1); watch it with: client tasks watch 01JDX6CCCCCCCCCCCCCCCCCCCC",
    ]);
    const alone = new GraphTracker(graph(), 0);
    alone.apply(event(1, { type: EventType.EVENT_TYPE_GRAPH, graphState: GraphState.GRAPH_STATE_FAILED, error: "boom", message: "not rolling back: it was itself an automatic rollback" }));
    assert.equal(summaryLines(plain, alone).at(-1), "not rolling back: it was itself an automatic rollback");
  });

  test("history shows each revision's strategy, why it was made, its graph's outcome or that there was nothing to do, and its other graphs", () => {
    const spec = (fields: Partial<Spec>) =>
      Spec.fromPartial({ count: 2, version: 1, maxSurge: 0, maxUnavailable: 1, onFailure: FailurePolicy.FAILURE_POLICY_STOP, ...fields });
    const now = 100_000;
    const revisions = [
      Revision.fromPartial({
        revision: 3,
        spec: spec({}),
        createdAt: new Date(now - 5_000),
        reason: RevisionReason.REVISION_REASON_AUTO_ROLLBACK,
        restores: 1,
        graphId: "01JDX6CCCCCCCCCCCCCCCCCCCC",
        graphState: GraphState.GRAPH_STATE_RUNNING,
        graphs: [
          { id: "01JDX7DDDDDDDDDDDDDDDDDDDD", reason: GraphReason.GRAPH_REASON_HEAL, state: GraphState.GRAPH_STATE_SUCCEEDED },
          { id: "01JDX6EEEEEEEEEEEEEEEEEEEE", reason: GraphReason.GRAPH_REASON_OPERATION, state: GraphState.GRAPH_STATE_SUCCEEDED },
          { id: "01JDX6CCCCCCCCCCCCCCCCCCCC", reason: GraphReason.GRAPH_REASON_UPDATE, state: GraphState.GRAPH_STATE_RUNNING },
        ],
        graphCount: 4,
      }),
      Revision.fromPartial({
        revision: 2,
        spec: spec({ version: 2, onFailure: FailurePolicy.FAILURE_POLICY_ROLLBACK, taskTimeoutMs: 1500, progressDeadlineMs: 300_000 }),
        createdAt: new Date(now - 6_000),
        reason: RevisionReason.REVISION_REASON_UPDATE,
        graphId: "01JDX5BBBBBBBBBBBBBBBBBBBB",
        graphState: GraphState.GRAPH_STATE_FAILED,
      }),
      Revision.fromPartial({ revision: 1, spec: spec({}), createdAt: new Date(now - 7_000), reason: RevisionReason.REVISION_REASON_ROLLBACK, restores: 4 }),
    ];
    const rows = historyTable(plain, revisions, now, { wide: true }).split("\n").map((line) => line.split(/\s{2,}/));
    assert.deepEqual(rows, [
      ["REVISION", "COUNT", "VERSION", "STRATEGY", "REASON", "AGE", "GRAPH", "OUTCOME", "TEMPLATE", "OTHER GRAPHS"],
      ["3", "2", "1", "surge 0, unavailable 1, on failure stop", "auto-rollback to 1", "5s", "01JDX6CCCCCCCCCCCCCCCCCCCC", "running", "default", "heal 01JDX7…DDDD, restart 01JDX6…EEEE and 1 more"],
      ["2", "2", "2", "surge 0, unavailable 1, on failure rollback, task timeout 1500ms, progress deadline 5m", "update", "6s", "01JDX5BBBBBBBBBBBBBBBBBBBB", "failed", "default", "-"],
      ["1", "2", "1", "surge 0, unavailable 1, on failure stop", "rollback to 4", "7s", "-", "nothing to do", "default", "-"],
    ]);
    const narrow = historyTable(plain, revisions, now).split("\n").map((line) => line.split(/\s{2,}/));
    assert.deepEqual(narrow.map((row) => row[4]), ["GRAPH", "01JDX6…CCCC +3", "01JDX5…BBBB", "-"]);
  });
});

describe("rendering resources, stats and templates", () => {
  test("an update's header and the history's strategy show cpu and memory only when the spec reserves them", () => {
    const response = (fields: Partial<Spec>) =>
      SetSpecResponse.fromPartial({ group: "web", revision: 2, spec: { count: 3, version: 2, maxSurge: 0, maxUnavailable: 1, ...fields }, current: [{ version: 1, count: 3 }] });
    assert.equal(updateHeader(response({}), false), "group web: revision 2, 3 × v1 → 3 × v2 (max surge 0, max unavailable 1)");
    assert.equal(
      updateHeader(response({ cpuMillis: 2000, memoryMb: 1536 }), false),
      "group web: revision 2, 3 × v1 → 3 × v2 (max surge 0, max unavailable 1, cpu 2, memory 1536Mi)",
    );
    const revision = Revision.fromPartial({ revision: 1, spec: Spec.fromPartial({ count: 1, version: 1, maxUnavailable: 1, cpuMillis: 250, memoryMb: 2048 }) });
    assert.equal(historyTable(plain, [revision], 0, { wide: true }).split("\n")[1]!.split(/\s{2,}/)[3], "surge 0, unavailable 1, on failure stop, cpu 250m, memory 2Gi");
  });

  test("nodes ls --wide shows each node's process, and a dash for every column the server sent nothing for", () => {
    const nodes = [
      Node.fromPartial({
        id: "01JDX3AAAAAAAAAAAAAAAAQ1R7",
        version: 1,
        revision: 3,
        state: NodeState.NODE_STATE_RUNNING,
        createdAt: new Date(0),
        stats: { pid: 4242, port: 20001, cpuPercent: 1.54, residentBytes: 47_395_635, uptimeMs: 65_000, healthy: true, lastCheck: "ok", lastCheckAt: new Date(0) },
      }),
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R8", version: 1, state: NodeState.NODE_STATE_UNHEALTHY, createdAt: new Date(0) }),
    ];
    const rows = nodesTable(plain, nodes, 5000, { wide: true }).split("\n").map((line) => line.split(/\s{2,}/));
    assert.deepEqual(rows, [
      ["ID", "VERSION", "REVISION", "STATE", "AGE", "PID", "PORT", "CPU", "MEMORY", "UPTIME", "HEALTH"],
      ["01JDX3AAAAAAAAAAAAAAAAQ1R7", "1", "3", "running", "5s", "4242", "20001", "1.5%", "45.2 MiB", "1m05s", "healthy"],
      ["01JDX3AAAAAAAAAAAAAAAAQ1R8", "1", "-", "unhealthy", "5s", "-", "-", "-", "-", "-", "-"],
    ]);
    assert.deepEqual([bytesText(512), bytesText(1536), bytesText(3 * 1024 ** 3)], ["512 B", "1.5 KiB", "3.0 GiB"]);
  });

  test("a template shows its command line as a shell would take it back, each variable, and its health check in words", () => {
    const template = NodeTemplate.fromPartial({
      command: "node",
      args: ["chat.mjs", "--name", "it's {node_id}"],
      env: { B: "two words", A: "1" },
      healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_TCP, intervalMs: 500, timeoutMs: 1000, failureThreshold: 1, startTimeoutMs: 60_000 },
      stopGraceMs: 5000,
    });
    assert.deepEqual(templateRows(template), [
      ["COMMAND", "node chat.mjs --name 'it'\\''s {node_id}'"],
      ["ENV", "A=1"],
      ["", "B='two words'"],
      ["HEALTH CHECK", "tcp connect to the node's port every 500ms, timeout 1s, unhealthy after 1 failure, start timeout 1m"],
      ["STOP GRACE", "5s, then SIGKILL"],
    ]);
    assert.equal(shellWord(""), "''");
  });
});

describe("rendering safe rollouts", () => {
  const graphId = "01JDX4ZQ8M6V1Y2K3N4P5Q6R7S";

  test("the preview states the fewest available and most alive nodes, and an estimate no finer than it is, or that there is no history", () => {
    const preview = (fields: Partial<SetSpecResponse>) => previewLine(SetSpecResponse.fromPartial({ minAvailable: 2, maxAlive: 4, ...fields }));
    assert.equal(preview({ hasEstimate: true, estimatedDurationMs: 12_345 }), "min available 2, max alive 4, estimated 12s");
    assert.equal(preview({ hasEstimate: true, estimatedDurationMs: 800 }), "min available 2, max alive 4, estimated 800ms");
    assert.equal(preview({ hasEstimate: true, estimatedDurationMs: 192_000 }), "min available 2, max alive 4, estimated 3m12s");
    assert.equal(preview({ hasEstimate: false, estimatedDurationMs: 0 }), "min available 2, max alive 4, no history to estimate its duration");
    assert.equal(preview({ minAvailable: 0, maxAlive: 0, hasEstimate: true, estimatedDurationMs: 0 }), "min available 0, max alive 0, estimated 0ms");
  });

  test("an update's header shows min-ready, a canary and its auto-promote when the spec sets them, and the template line its command", () => {
    const response = (fields: Partial<Spec>) =>
      SetSpecResponse.fromPartial({ group: "web", revision: 5, spec: { count: 10, version: 2, maxSurge: 0, maxUnavailable: 1, ...fields }, current: [{ version: 1, count: 10 }] });
    assert.equal(
      updateHeader(response({ minReadyMs: 10_000, canary: 2, autoPromoteAfterMs: 300_000 }), false),
      "group web: revision 5, 10 × v1 → 10 × v2 (max surge 0, max unavailable 1, min ready 10s, canary 2, auto-promote after 5m)",
    );
    assert.equal(updateHeader(response({ canary: 2 }), true), "group web: dry run, based on revision 5, 10 × v1 → 10 × v2 (max surge 0, max unavailable 1, canary 2)");
    const template = NodeTemplate.fromPartial({ command: "node", args: ["chat.mjs", "two words"] });
    assert.equal(specTemplateLine({ template, templateHash: "3f9c2a1b77e0d4c5" }), "template 3f9c2a1b: node chat.mjs 'two words'");
    assert.equal(specTemplateLine({ template, templateHash: "" }), "template: node chat.mjs 'two words'");
    assert.equal(specTemplateLine({ template: undefined, templateHash: "" }), "template: the server's default");
  });

  test("a rollback's first line names the revision it restores, why that one, and whether the count comes back", () => {
    assert.equal(rollbackHeader({ revision: 0, withCount: false }, 3), "rolling back to revision 3 (the last revision whose rollout succeeded), keeping the current count");
    assert.equal(rollbackHeader({ revision: 0, withCount: true }, 3), "rolling back to revision 3 (the last revision whose rollout succeeded), with its count");
    assert.equal(rollbackHeader({ revision: 2, withCount: false }, 2), "rolling back to revision 2, keeping the current count");
    assert.equal(rollbackHeader({ revision: 2, withCount: true }, 2), "rolling back to revision 2, with its count");
  });

  test("a waiting task's stream line says why, once per reason, and tables and the progress line count it as waiting", () => {
    const tracker = new GraphTracker(graph(), 0);
    const base = new Date(1000);
    const reason = "would leave 1 available, below the floor 2";
    const waits = event(1, { taskState: TaskState.TASK_STATE_PENDING, message: reason });
    assert.equal(tracker.isRepeatedWait(waits), false);
    tracker.apply(waits);
    assert.equal(eventLine(plain, waits, tracker, base), " +0.10s  0  waiting    shut_down_node 01JDX3…Q1R7: would leave 1 available, below the floor 2");
    assert.equal(tracker.isRepeatedWait(event(2, { taskState: TaskState.TASK_STATE_PENDING, message: reason })), true, "the same reason again");
    assert.equal(tracker.isRepeatedWait(event(2, { taskState: TaskState.TASK_STATE_PENDING, message: "another graph's tasks run" })), false, "a new reason");
    assert.equal(tracker.waitingCount(), 1);
    assert.equal(taskTable(plain, tracker, { shortIds: true, errors: true }).split("\n")[1]!.split(/\s{2,}/)[3], "waiting");
    assert.equal(taskTable(plain, tracker, { shortIds: true, errors: true }).split("\n")[1]!.split(/\s{2,}/)[5], reason);
    assert.equal(progressText(tracker.tally(), 1500, false, tracker.waitingCount()), "[0/2 done, 0 running, 1 waiting, 0 failed, 1.5s]");
    const prefixed = event(3, { taskState: TaskState.TASK_STATE_PENDING, message: `waiting: ${reason}` });
    assert.equal(eventLine(plain, prefixed, tracker, base), " +0.30s  0  waiting    shut_down_node 01JDX3…Q1R7: would leave 1 available, below the floor 2", "the word is said once");
    // A pending event without a reason shows nothing; the start ends the wait.
    assert.equal(eventLine(plain, event(3, { taskState: TaskState.TASK_STATE_PENDING }), tracker, base), undefined);
    tracker.apply(event(4, { taskState: TaskState.TASK_STATE_RUNNING, attempt: 1 }));
    assert.equal(tracker.waitingCount(), 0);
    assert.equal(tracker.task(0)!.waiting, "");
  });

  test("the promote gate says how to open it, with the graph's id, and when it opens by itself", () => {
    const gate = { action: TaskAction.TASK_ACTION_AWAIT_PROMOTION, version: 0, nodeId: "" };
    const spec = (autoPromoteAfterMs: number) => Spec.fromPartial({ count: 10, version: 2, canary: 2, autoPromoteAfterMs });
    assert.equal(actionText(gate, { shortIds: true, graph: { id: graphId, spec: spec(0) } }), `await_promotion (client graphs promote ${graphId})`);
    assert.equal(actionText(gate, { shortIds: true, graph: { id: graphId, spec: spec(60_000) } }), `await_promotion (auto after 1m, or client graphs promote ${graphId})`);
    assert.equal(actionText(gate, { shortIds: true }), "await_promotion");
    const planned = graph();
    planned.tasks.push({ ...planned.tasks[1]!, id: 2, prerequisites: [1], action: TaskAction.TASK_ACTION_AWAIT_PROMOTION, version: 0 });
    assert.equal(planTable(plain, new GraphTracker(planned, 0)).split("\n")[3], `2    1         await_promotion (client graphs promote ${graphId})`);
  });

  test("a snapshot of a settled graph keeps what its final event decided, so a late watcher's summary says it too", () => {
    const settled = { ...graph(), state: GraphState.GRAPH_STATE_FAILED, error: "boom", message: "rolling back to revision 1 (1 × v1)", nextGraphId: "01JDX6CCCCCCCCCCCCCCCCCCCC" } as Graph;
    assert.equal(summaryLines(plain, new GraphTracker(settled)).at(-1), "rolling back to revision 1 (1 × v1); watch it with: client tasks watch 01JDX6CCCCCCCCCCCCCCCCCCCC");
  });

  test("an update followed into its rollback says it follows it, and ends with one line on how both ended", () => {
    const tracker = new GraphTracker(graph(), 0);
    tracker.apply(event(1, { type: EventType.EVENT_TYPE_GRAPH, graphState: GraphState.GRAPH_STATE_RUNNING }));
    tracker.apply(
      event(2, { type: EventType.EVENT_TYPE_GRAPH, graphState: GraphState.GRAPH_STATE_FAILED, error: "boom", message: "rolling back to revision 3 (3 × v1)", nextGraphId: "01JDX6CCCCCCCCCCCCCCCCCCCC" }),
    );
    assert.equal(summaryLines(plain, tracker, { followingNext: true }).at(-1), "rolling back to revision 3 (3 × v1); following graph 01JDX6CCCCCCCCCCCCCCCCCCCC");
    assert.equal(summaryLines(plain, tracker).at(-1), "rolling back to revision 3 (3 × v1); watch it with: client tasks watch 01JDX6CCCCCCCCCCCCCCCCCCCC");
    const rollback = { id: "01JDX6CCCCCCCCCCCCCCCCCCCC", state: GraphState.GRAPH_STATE_SUCCEEDED };
    assert.equal(rolledBackLine(plain, rollback, 3), "update failed; rolled back to revision 3 (graph 01JDX6CCCCCCCCCCCCCCCCCCCC)");
    assert.equal(rolledBackLine(plain, rollback, undefined), "update failed; rolled back (graph 01JDX6CCCCCCCCCCCCCCCCCCCC)");
    assert.equal(
      rolledBackLine(plain, { ...rollback, state: GraphState.GRAPH_STATE_FAILED }, 3),
      "update failed, and its rollback to revision 3 failed too (graph 01JDX6CCCCCCCCCCCCCCCCCCCC)",
    );
    assert.equal(
      rolledBackLine(plain, { ...rollback, state: GraphState.GRAPH_STATE_SUPERSEDED }, 3),
      "update failed, and its rollback to revision 3 was superseded (graph 01JDX6CCCCCCCCCCCCCCCCCCCC)",
    );
  });

  test("nodes ls says when the group is in a crash loop, and --all shows how each node ended and when", () => {
    const now = 100_000;
    assert.equal(
      crashLoopLine({ restarts: 7, nextAttemptAt: new Date(now + 40_000), lastFailure: "exited with code 1" }, now),
      "crash loop: 7 restarts, next in 40s (last: exited with code 1)",
    );
    assert.equal(crashLoopLine({ restarts: 1, nextAttemptAt: new Date(now - 1), lastFailure: "" }, now), "crash loop: 1 restart, next now");
    assert.equal(crashLoopLine({ restarts: 2, nextAttemptAt: new Date(now + 300), lastFailure: "" }, now), "crash loop: 2 restarts, next in 1s", "rounded up, never 'in 0s'");
    const nodes = [
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R7", version: 2, revision: 4, state: NodeState.NODE_STATE_FAILED, createdAt: new Date(now - 90_000), updatedAt: new Date(now - 60_000), exitStatus: "exited with code 1", error: "Error: listen EADDRINUSE" }),
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R8", version: 1, revision: 3, state: NodeState.NODE_STATE_STOPPED, createdAt: new Date(now - 90_000), updatedAt: new Date(now - 5_000), exitStatus: "killed by SIGTERM" }),
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R9", version: 1, revision: 3, state: NodeState.NODE_STATE_STOPPED, createdAt: new Date(now - 90_000), updatedAt: new Date(now - 5_000) }),
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1RA", version: 1, revision: 3, state: NodeState.NODE_STATE_RUNNING, createdAt: new Date(now - 90_000) }),
    ];
    const rows = nodesTable(plain, nodes, now, { wide: false, all: true }).split("\n").map((line) => line.split(/\s{2,}/));
    assert.deepEqual(rows, [
      ["ID", "VERSION", "REVISION", "STATE", "AGE", "LAST STATE"],
      ["01JDX3AAAAAAAAAAAAAAAAQ1R7", "2", "4", "failed", "90s", "exited with code 1, 60s ago: Error: listen EADDRINUSE"],
      ["01JDX3AAAAAAAAAAAAAAAAQ1R8", "1", "3", "stopped", "5s", "killed by SIGTERM, 5s ago"],
      ["01JDX3AAAAAAAAAAAAAAAAQ1R9", "1", "3", "stopped", "5s", "stopped, 5s ago"],
      ["01JDX3AAAAAAAAAAAAAAAAQ1RA", "1", "3", "running", "90s", "-"],
    ]);
    const long = Node.fromPartial({ ...nodes[0], error: "x".repeat(200) });
    assert.equal(nodesTable(plain, [long], now, { wide: false, all: true }).split("\n")[1]!.split(/\s{2,}/)[5]!.length, 80, "cut to 80 in the list");
    assert.equal(lastStateText(long, now)!.length, "exited with code 1, 60s ago: ".length + 200, "whole elsewhere");
  });

  test("history --revision shows a revision whole, and what changed from the one before, each variable on its own", () => {
    const template = (fields: Partial<NodeTemplate>) =>
      NodeTemplate.fromPartial({
        command: "node",
        args: ["chat.mjs"],
        env: { MODE: "dev", KEEP: "1" },
        healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "/healthz", intervalMs: 1000, timeoutMs: 1000, failureThreshold: 3, startTimeoutMs: 10_000 },
        stopGraceMs: 5000,
        ...fields,
      });
    const before = Spec.fromPartial({ count: 3, version: 1, maxUnavailable: 1, template: template({}), templateHash: "aaaa" });
    const after = Spec.fromPartial({
      count: 3,
      version: 2,
      maxUnavailable: 1,
      minReadyMs: 10_000,
      canary: 1,
      onFailure: FailurePolicy.FAILURE_POLICY_ROLLBACK,
      template: template({ args: ["chat2.mjs"], env: { KEEP: "1", NEW: "two words" } }),
      templateHash: "bbbb",
    });
    assert.deepEqual(revisionChanges(before, after), [
      ["VERSION", "1 → 2"],
      ["MIN READY", "0 (available once healthy) → 10s"],
      ["CANARY", "none → 1, then promote with 'client graphs promote'"],
      ["ON FAILURE", "stop → rollback"],
      ["TEMPLATE", "hash aaaa → hash bbbb"],
      ["COMMAND", "node chat.mjs → node chat2.mjs"],
      ["ENV NEW", "(unset) → 'two words'"],
      ["ENV MODE", "dev → (unset)"],
    ]);
    assert.deepEqual(revisionChanges(before, before), []);
    assert.deepEqual(revisionChanges(Spec.fromPartial({ count: 1, version: 1, maxUnavailable: 1 }), before).slice(0, 2), [
      ["COUNT", "1 → 3"],
      ["TEMPLATE", "the server's default → hash aaaa"],
    ]);
    const now = Date.parse("2025-01-01T00:01:00Z");
    const rows = revisionRows(
      Revision.fromPartial({ revision: 4, spec: after, createdAt: new Date(now - 60_000), reason: RevisionReason.REVISION_REASON_UPDATE, graphId, graphState: GraphState.GRAPH_STATE_FAILED }),
      now,
    );
    assert.deepEqual(rows.slice(0, 6), [
      ["REVISION", "4"],
      ["REASON", "update"],
      ["CREATED", "60s ago (2025-01-01T00:00:00.000Z)"],
      ["GRAPH", `${graphId} failed`],
      ["COUNT", "3"],
      ["VERSION", "2"],
    ]);
    assert.deepEqual(rows.slice(-6), [
      ["TEMPLATE", "its own, hash bbbb"],
      ["COMMAND", "node chat2.mjs"],
      ["ENV", "KEEP=1"],
      ["", "NEW='two words'"],
      ["HEALTH CHECK", "http GET /healthz every 1s, timeout 1s, unhealthy after 3 failures, start timeout 10s"],
      ["STOP GRACE", "5s, then SIGKILL"],
    ]);
  });

  test("nodes describe shows the node's revision, last state and restarts, then its events oldest first", () => {
    const created = new Date(Date.parse("2025-01-01T00:00:00Z"));
    const node = Node.fromPartial({
      id: "01JDX3AAAAAAAAAAAAAAAAQ1R7",
      group: "web",
      version: 2,
      revision: 4,
      templateHash: "3f9c2a1b77e0d4c5",
      state: NodeState.NODE_STATE_FAILED,
      host: "vm",
      createdAt: created,
      updatedAt: new Date(created.getTime() + 3_000),
      exitStatus: "exited with code 1",
      error: "Error: boom",
      stats: { restarts: 2 },
    });
    const at = (milliseconds: number) => new Date(created.getTime() + milliseconds);
    const events = [
      event(1, { time: at(0), graphId, taskId: 1, taskState: TaskState.TASK_STATE_RUNNING, action: TaskAction.TASK_ACTION_START_NODE, attempt: 1, nodeId: node.id }),
      event(2, { time: at(10), type: EventType.EVENT_TYPE_NODE, graphId: "", nodeState: NodeState.NODE_STATE_STARTING, nodeId: node.id }),
      event(3, { time: at(1500), type: EventType.EVENT_TYPE_NODE, graphId: "", nodeState: NodeState.NODE_STATE_RUNNING, nodeId: node.id }),
      event(4, { time: at(3000), type: EventType.EVENT_TYPE_NODE, graphId: "", nodeState: NodeState.NODE_STATE_FAILED, nodeId: node.id, error: "exited with code 1: Error: boom" }),
    ];
    const lines = nodeDescribeLines(plain, node, events, created.getTime() + 63_000).join("\n").split("\n");
    const fields = new Map(lines.slice(0, 9).map((line) => line.split(/\s{2,}/) as [string, string]));
    assert.deepEqual(Object.fromEntries(fields), {
      NODE: node.id,
      GROUP: "web",
      VERSION: "2",
      REVISION: "4 (template 3f9c2a1b)",
      STATE: "failed",
      HOST: "vm",
      CREATED: "63s ago (2025-01-01T00:00:00.000Z)",
      "LAST STATE": "exited with code 1, 60s ago: Error: boom",
      RESTARTS: "2",
    });
    assert.deepEqual(lines.slice(10).map((line) => line.split(/\s{2,}/)), [
      ["EVENTS (oldest first; TIME is since the node was created)"],
      ["TIME", "EVENT", "GRAPH", "DETAIL"],
      ["+0ms", "task 1 started start_node", graphId, "-"],
      ["+10ms", "node starting", "-", "-"],
      ["+1.5s", "node running", "-", "-"],
      ["+3.0s", "node failed", "-", "exited with code 1: Error: boom"],
    ]);
    assert.equal(nodeDescribeLines(plain, node, [], 0).at(-1), "no events recorded for this node");
  });
});

describe("colours", () => {
  const colour = { color: true };
  const painted = (text: string) => /^\x1b\[(\d+)m(.*)\x1b\[0m$/.exec(text)?.slice(1, 3) ?? ["plain", text];
  const COLOURS: Record<string, string> = { "32": "green", "33": "yellow", "31": "red", "2": "grey", plain: "plain" };
  const colourOf = (text: string) => COLOURS[painted(text)[0]!]!;

  test("a running node is green (healthy), not yellow: yellow is work under way, red failed, grey stopped", () => {
    const nodes: [string, string][] = [
      ["running", "green"],
      ["starting", "yellow"],
      ["stopping", "yellow"],
      ["unhealthy", "red"],
      ["failed", "red"],
      ["stopped", "grey"],
    ];
    for (const [word, expected] of nodes) assert.equal(colourOf(nodeStateColor(colour, word)), expected, `node ${word}`);
    const node = Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R7", version: 1, state: NodeState.NODE_STATE_RUNNING, createdAt: new Date(0) });
    assert.ok(nodesTable(colour, [node], 1000).includes("\x1b[32mrunning\x1b[0m"), "nodes ls paints a running node green");
  });

  test("tasks and graphs: succeeded green, running, waiting and paused yellow, failed red, cancelled, skipped and superseded grey, pending plain", () => {
    const words: [string, string][] = [
      ["succeeded", "green"],
      ["running", "yellow"],
      ["started", "yellow"],
      ["waiting", "yellow"],
      ["paused", "yellow"],
      ["failed", "red"],
      ["cancelled", "grey"],
      ["skipped", "grey"],
      ["superseded", "grey"],
      ["pending", "plain"],
    ];
    for (const [word, expected] of words) assert.equal(colourOf(stateColor(colour, word)), expected, word);
    for (const [word] of words) assert.equal(stateColor(plain, word), word, "no colour without a terminal");
  });
});

describe("node ages", () => {
  test("nodes ls --all: a stopped node's AGE counts from when it stopped, a live or failed one's from when it was created", () => {
    const now = Date.parse("2025-01-01T12:00:00Z");
    const ago = (milliseconds: number) => new Date(now - milliseconds);
    const nodes = [
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R7", version: 1, state: NodeState.NODE_STATE_RUNNING, createdAt: ago(3_600_000), updatedAt: ago(3_500_000) }),
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R8", version: 1, state: NodeState.NODE_STATE_STOPPED, createdAt: ago(3 * 86_400_000), updatedAt: ago(90_000) }),
      Node.fromPartial({ id: "01JDX3AAAAAAAAAAAAAAAAQ1R9", version: 1, state: NodeState.NODE_STATE_FAILED, createdAt: ago(600_000), updatedAt: ago(30_000), exitStatus: "exited with code 1" }),
    ];
    const rows = nodesTable(plain, nodes, now, { wide: false, all: true }).split("\n").map((line) => line.split(/\s{2,}/));
    assert.deepEqual(rows.map((row) => [row[3], row[4]]), [
      ["STATE", "AGE"],
      ["running", "60m"],
      ["stopped", "90s"],
      ["failed", "10m"],
    ]);
  });
});
