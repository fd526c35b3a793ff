import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EventType, type Graph, GraphState, MAX_COUNT, TaskAction, TaskState } from "@drover/shared";
import fc from "fast-check";
import { resolveGlobalOptions } from "../src/connection.js";
import { UsageError } from "../src/errors.js";
import { graphsListRequest } from "../src/graphs.js";
import { actionText, eventLine, summaryLines } from "../src/render.js";
import { graphIdArgument } from "../src/tasks.js";
import { GraphTracker } from "../src/tracker.js";
import { updateRequest } from "../src/update.js";

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
      maxUnavailable: undefined,
      dryRun: false,
    });
    assert.throws(() => updateRequest({ count: "x", version: "y" }, "web"), /count "x" is invalid.*; version "y" is invalid/);
    assert.throws(() => updateRequest({ count: "3", version: "2", maxUnavailable: "0" }, "web"), /both 0/);
    assert.doesNotThrow(() => updateRequest({ count: "3", version: "2", maxSurge: "1", maxUnavailable: "0" }, "web"));
  });

  test("global options are checked: server address, group name, output format", () => {
    assert.deepEqual(resolveGlobalOptions({}), { server: "127.0.0.1:8888", group: "default", output: "table" });
    assert.throws(() => resolveGlobalOptions({ server: "localhost" }), /server "localhost" is invalid/);
    assert.throws(() => resolveGlobalOptions({ server: "localhost:99999" }), /server "localhost:99999" is invalid/);
    assert.throws(() => resolveGlobalOptions({ group: "-web" }), /group "-web" is invalid/);
    assert.throws(() => resolveGlobalOptions({ output: "yaml" }), /output "yaml" is invalid/);
  });

  test("graph ids are case-insensitive ULIDs; limits are 1 to 1000", () => {
    assert.equal(graphIdArgument("01arz3ndektsv4rrffq69g5fav"), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert.throws(() => graphIdArgument("01ARZ3NDEKTSV4RRFFQ69G5FA"), /graph id "01ARZ3NDEKTSV4RRFFQ69G5FA" is invalid/);
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
