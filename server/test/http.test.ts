import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { eventually, startTestServer, type TestServer, temporaryDataDir } from "./support.js";
import { freePort, startServer } from "./processes.js";

const TOKEN = "http-test-token-0123456789abcdef";
type Json = Record<string, any>;

/** Whether the real curl is here, for the acceptance test. */
const CURL = (() => {
  try {
    return execFileSync("which", ["curl"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
})();
const run = promisify(execFile);

/** A curl-like client of one server's HTTP API: the token unless told otherwise, JSON bodies, and a JSON content type on every PUT and POST. */
function httpClient(base: string) {
  return (path: string, options: { method?: string; body?: unknown; raw?: string; token?: string | null; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? TOKEN : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = options.raw;
    if (options.body !== undefined) body = JSON.stringify(options.body);
    const method = options.method ?? (body === undefined ? "GET" : "PUT");
    if (method !== "GET") headers["content-type"] ??= "application/json";
    return fetch(`${base}${path}`, { method, headers, body });
  };
}

async function expectError(response: Response, httpStatus: number, code: string, message?: RegExp): Promise<Json> {
  const text = await response.text();
  assert.equal(response.status, httpStatus, text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = JSON.parse(text) as Json;
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.equal(body.error.code, code);
  if (message) assert.match(body.error.message, message);
  return body;
}

/** The JSON lines of a streamed response, read to its end. */
async function jsonLines(response: Response): Promise<Json[]> {
  assert.equal(response.status, 200, await response.clone().text());
  assert.match(response.headers.get("content-type") ?? "", /^application\/x-ndjson/);
  return (await response.text())
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Json);
}

interface ServerSentEvent {
  id?: string;
  event: string;
  data: Json;
}

/** The server-sent events of a streamed response, read to its end. */
async function serverSentEvents(response: Response): Promise<ServerSentEvent[]> {
  assert.equal(response.status, 200, await response.clone().text());
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const events: ServerSentEvent[] = [];
  for (const block of (await response.text()).split("\n\n")) {
    const fields = new Map<string, string>();
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      fields.set(line.slice(0, colon), line.slice(colon + 1).trimStart());
    }
    if (fields.has("data")) events.push({ id: fields.get("id"), event: fields.get("event") ?? "message", data: JSON.parse(fields.get("data")!) as Json });
  }
  return events;
}

describe("the HTTP/JSON API", { timeout: 60_000 }, () => {
  let server: TestServer;
  let call: ReturnType<typeof httpClient>;

  before(async () => {
    // Slow enough that a watch started right after an update sees the graph run.
    server = await startTestServer({ driver: { latency: { min: 100, max: 150 } }, server: { token: TOKEN, httpListen: "127.0.0.1:0" } });
    call = httpClient(`http://127.0.0.1:${server.server.httpPort}`);
  });
  after(() => server.stop());

  /** Updates a group and reads its graph's events to the end. */
  async function update(group: string, spec: Json): Promise<Json> {
    const response = await call(`/v1/groups/${group}/spec`, { body: spec });
    assert.equal(response.status, 200);
    const result = (await response.json()) as Json;
    await jsonLines(await call(`/v1/graphs/${result.graph.id}/events`));
    return result;
  }

  it("refuses a request without the token, or with a wrong one, with 401 and the JSON error", async () => {
    const missing = await call("/v1/groups/default/nodes", { token: null });
    assert.match(missing.headers.get("www-authenticate") ?? "", /^Bearer/);
    await expectError(missing, 401, "UNAUTHENTICATED", /missing token: send the header 'Authorization: Bearer <token>'/);
    await expectError(await call("/v1/groups/default/nodes", { token: "not-the-token" }), 401, "UNAUTHENTICATED", /wrong token/);
    await expectError(
      await call("/v1/groups/default/nodes", { token: null, headers: { authorization: TOKEN } }),
      401,
      "UNAUTHENTICATED",
      /wrong token/,
    );
    await expectError(await call("/v1/groups/locked/spec", { token: null, body: { count: 1, version: 1 } }), 401, "UNAUTHENTICATED");
    await expectError(await call("/v1/groups/locked/graphs/latest/events", { token: "wrong" }), 401, "UNAUTHENTICATED");
    await expectError(await call("/v1/no/such/route", { token: null }), 401, "UNAUTHENTICATED");
    // Nothing was changed by refused requests: the group does not exist.
    await expectError(await call("/v1/groups/locked/revisions"), 404, "NOT_FOUND", /group locked does not exist/);
  });

  it("updates a group and streams its graph to the end, as JSON lines and as server-sent events", async () => {
    const response = await call("/v1/groups/web/spec", { body: { count: 3, version: 1, maxSurge: 1 } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    const result = (await response.json()) as Json;
    // Proto JSON: lowerCamelCase names, enum names, zero values left out.
    assert.equal(result.group, "web");
    assert.equal(result.revision, 1);
    // ...except a spec's count, version, strategy and min-ready, whose absence would mean something else on input.
    assert.deepEqual(result.spec, { count: 3, version: 1, maxSurge: 1, maxUnavailable: 1, onFailure: "FAILURE_POLICY_STOP", minReadyMs: 0 });
    const graph = result.graph as Json;
    assert.equal(graph.tasks.length, 4);
    assert.deepEqual(graph.tasks[3].prerequisites, [0, 1, 2]);
    assert.equal(graph.tasks[0].action, "TASK_ACTION_START_NODE");
    assert.equal(graph.reason, "GRAPH_REASON_UPDATE");
    assert.ok(!("nothing_to_do" in result) && !("max_surge" in result.spec));

    const [lines, sse] = await Promise.all([
      call(`/v1/graphs/${graph.id}/events`).then(jsonLines),
      call(`/v1/groups/web/graphs/latest/events`, { headers: { accept: "text/event-stream" } }).then(serverSentEvents),
    ]);

    assert.deepEqual(Object.keys(lines[0]!), ["snapshot"]);
    assert.equal(lines[0]!.snapshot.id, graph.id);
    assert.equal(lines[0]!.snapshot.tasks.length, 4);
    assert.ok(lines.length > 1, "the watch saw the graph run");
    for (const line of lines.slice(1)) assert.deepEqual(Object.keys(line), ["event"]);
    assert.equal(lines.at(-1)!.event.type, "EVENT_TYPE_GRAPH");
    assert.equal(lines.at(-1)!.event.graphState, "GRAPH_STATE_SUCCEEDED");

    assert.equal(sse[0]!.event, "snapshot");
    assert.equal(sse[0]!.data.id, graph.id);
    assert.equal(sse[0]!.id, String(sse[0]!.data.sequence));
    assert.equal(sse.at(-1)!.event, "end", "the stream says it ended on its own");
    const events = sse.slice(1, -1);
    assert.ok(events.length > 0);
    for (const event of events) {
      assert.equal(event.event, "event");
      assert.equal(event.id, String(event.data.sequence));
    }
    assert.equal(events.at(-1)!.data.graphState, "GRAPH_STATE_SUCCEEDED");
    const sequences = events.map((event) => Number(event.id));
    assert.deepEqual(sequences, [...sequences].sort((a, b) => a - b), "in sequence order");

    // An EventSource that reconnects sends the last id it saw: it gets what followed, once.
    const resumed = await serverSentEvents(await call(`/v1/graphs/${graph.id}/events`, { headers: { accept: "text/event-stream", "last-event-id": events[0]!.id! } }));
    assert.deepEqual(
      resumed.map((event) => event.id),
      [...events.slice(1).map((event) => event.id), undefined],
    );
    assert.equal(resumed.at(-1)!.event, "end");
    const afterQuery = await jsonLines(await call(`/v1/graphs/${graph.id}/events?after=${events[0]!.id}`));
    assert.deepEqual(afterQuery.map((line) => line.event.sequence), sequences.slice(1));
    // Resuming after the graph's last event: nothing more will come, and 204 tells an EventSource to stop.
    const settled = await call(`/v1/graphs/${graph.id}/events`, { headers: { accept: "text/event-stream", "last-event-id": events.at(-1)!.id! } });
    assert.equal(settled.status, 204);
  });

  it("lists nodes, graphs, revisions and one graph in proto JSON", async () => {
    const { graph } = await update("list", { count: 3, version: 1 });
    const nodes = (await (await call("/v1/groups/list/nodes")).json()) as Json;
    assert.equal(nodes.nodes.length, 3);
    for (const node of nodes.nodes) {
      assert.equal(node.state, "NODE_STATE_RUNNING");
      assert.equal(node.version, 1);
      assert.match(node.createdAt, /^\d{4}-\d\d-\d\dT/);
    }
    assert.equal(nodes.revision, 1);
    assert.equal(nodes.spec.count, 3);
    assert.equal(((await (await call("/v1/groups/list/nodes?all=true&wide=true")).json()) as Json).nodes.length, 3);

    const graphs = (await (await call("/v1/groups/list/graphs?limit=5")).json()) as Json;
    assert.deepEqual(graphs.graphs.map((listed: Json) => listed.id), [graph.id]);
    assert.equal(graphs.graphs[0].state, "GRAPH_STATE_SUCCEEDED");
    assert.equal(graphs.graphs[0].tasks, undefined, "lists leave tasks out");

    const one = (await (await call(`/v1/graphs/${graph.id}`)).json()) as Json;
    assert.equal(one.graph.state, "GRAPH_STATE_SUCCEEDED");
    assert.equal(one.graph.tasks.length, 4);
    assert.equal(one.graph.counts.succeeded, 4);

    const revisions = (await (await call("/v1/groups/list/revisions")).json()) as Json;
    assert.equal(revisions.revisions[0].graphId, graph.id);
    assert.equal(revisions.revisions[0].reason, "REVISION_REASON_UPDATE");
  });

  it("watches a group's nodes as a snapshot and then their events", async () => {
    await update("watched", { count: 1, version: 1 });
    const response = await call("/v1/groups/watched/nodes/events", { headers: { accept: "text/event-stream" } });
    assert.equal(response.status, 200);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${pattern}: ${text}`);
        text += value;
      }
    };
    await readUntil(/event: snapshot\ndata: .*\n\n/);
    assert.match(text, /"state":"NODE_STATE_RUNNING"/);
    await call("/v1/groups/watched/spec", { body: { count: 2, version: 1 } });
    await readUntil(/"nodeState":"NODE_STATE_RUNNING"/);
    assert.match(text, /event: event\ndata: \{"sequence":\d+,.*"nodeState":"NODE_STATE_STARTING"/);
    await reader.cancel();
  });

  it("answers bad requests with 400 and the service's words, unknown things with 404, in one JSON shape", async () => {
    // The proto JSON mapping refuses what the protobuf types cannot carry...
    await expectError(await call("/v1/groups/default/spec", { body: { count: -1, version: 1 } }), 400, "INVALID_ARGUMENT", /^count -1 is invalid/);
    await expectError(await call("/v1/groups/default/spec", { body: { count: 1.5, version: 1 } }), 400, "INVALID_ARGUMENT", /^count 1.5 is invalid/);
    await expectError(await call("/v1/groups/default/spec", { body: { count: 1, version: 1, maxsurge: 1 } }), 400, "INVALID_ARGUMENT", /unknown field "maxsurge".*maxSurge/);
    await expectError(await call("/v1/groups/default/spec", { body: { version: 1 } }), 400, "INVALID_ARGUMENT", /count is missing/);
    await expectError(
      await call("/v1/groups/default/spec", { body: { count: 1, version: 1, onFailure: "sometimes" } }),
      400,
      "INVALID_ARGUMENT",
      /onFailure "sometimes" is invalid: it must be one of FAILURE_POLICY_STOP, FAILURE_POLICY_ROLLBACK/,
    );
    // ...and the service refuses the rest, in the words it gives a gRPC client.
    await expectError(await call("/v1/groups/default/spec", { body: { count: 1, version: 0 } }), 400, "INVALID_ARGUMENT", /^version 0 is invalid: it must be an integer from 1/);
    await expectError(await call("/v1/groups/default/spec", { body: { count: 100_001, version: 1 } }), 400, "INVALID_ARGUMENT", /^count 100001 is invalid/);
    await expectError(await call("/v1/groups/Bad_Name/spec", { body: { count: 1, version: 1 } }), 400, "INVALID_ARGUMENT", /^group "Bad_Name" is invalid/);
    await expectError(await call("/v1/groups/default/spec", { body: { count: 1, version: 1, max_surge: 0, max_unavailable: 0 } }), 400, "INVALID_ARGUMENT", /both 0/);
    await expectError(await call("/v1/groups/default/graphs?limit=5000"), 400, "INVALID_ARGUMENT", /limit 5000 is invalid/);
    await expectError(await call("/v1/groups/default/graphs?limit=many"), 400, "INVALID_ARGUMENT", /query parameter limit "many" is invalid/);
    await expectError(await call("/v1/groups/default/graphs?limt=5"), 400, "INVALID_ARGUMENT", /unknown query parameter "limt"/);
    await expectError(await call("/v1/graphs/nope"), 400, "INVALID_ARGUMENT", /graph id "nope" is invalid/);
    await expectError(await call("/v1/graphs/nope/events"), 400, "INVALID_ARGUMENT", /graph id "nope" is invalid/);
    await expectError(await call("/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV/events", { headers: { "last-event-id": "soon" } }), 400, "INVALID_ARGUMENT", /Last-Event-ID "soon"/);

    // Bodies that are not JSON objects.
    await expectError(await call("/v1/groups/default/spec", { method: "PUT", raw: '{"count": 1,', headers: { "content-type": "application/json" } }), 400, "INVALID_ARGUMENT", /not valid JSON/);
    await expectError(await call("/v1/groups/default/spec", { method: "PUT", raw: "[1, 2]", headers: { "content-type": "application/json" } }), 400, "INVALID_ARGUMENT", /must be a JSON object/);
    await expectError(await call("/v1/groups/default/spec", { method: "PUT" }), 400, "INVALID_ARGUMENT", /must be a JSON object/);
    await expectError(
      await call("/v1/groups/default/spec", { method: "PUT", raw: "count=1&version=1", headers: { "content-type": "application/x-www-form-urlencoded" } }),
      415,
      "INVALID_ARGUMENT",
      /Content-Type: application\/json/,
    );
    await expectError(await call("/v1/groups/default/spec", { body: { count: 1, version: 1, padding: "x".repeat(1_100_000) } }), 413, "INVALID_ARGUMENT", /larger than 1 MiB/);

    // Things that are not there.
    await expectError(await call("/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "NOT_FOUND", /graph 01ARZ3NDEKTSV4RRFFQ69G5FAV not found/);
    await expectError(await call("/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV/events"), 404, "NOT_FOUND", /not found/);
    await expectError(await call("/v1/groups/empty/graphs/latest/events", { headers: { accept: "text/event-stream" } }), 404, "NOT_FOUND", /group empty does not exist/);
    await expectError(await call("/v1/nodes/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "NOT_FOUND", /node .* not found/);
    await expectError(await call("/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV:cancel", { method: "POST" }), 404, "NOT_FOUND");
    await expectError(await call("/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV:explode", { method: "POST" }), 404, "NOT_FOUND", /no route POST/);
    await expectError(await call("/v2/anything"), 404, "NOT_FOUND", /no route GET \/v2\/anything/);
  });

  it("refuses a stale expected revision with 409 FAILED_PRECONDITION, and leaves the group alone", async () => {
    await update("guarded", { count: 1, version: 1 });
    await expectError(
      await call("/v1/groups/guarded/spec", { body: { count: 2, version: 1, expectRevision: 7 } }),
      409,
      "FAILED_PRECONDITION",
      /revision/,
    );
    const dryRun = (await (await call("/v1/groups/guarded/spec", { body: { count: 2, version: 1, expectRevision: 1, dryRun: true } })).json()) as Json;
    assert.equal(dryRun.revision, 1, "a dry run stores no revision");
    assert.equal(dryRun.graph.tasks.length, 2);
    assert.equal(((await (await call("/v1/groups/guarded/revisions")).json()) as Json).revisions.length, 1);
  });

  it("pauses, resumes and cancels a running graph, and refuses to cancel it twice", async () => {
    const { graph } = (await (await call("/v1/groups/steered/spec", { body: { count: 30, version: 1 } })).json()) as Json;
    const paused = (await (await call(`/v1/graphs/${graph.id}:pause`, { method: "POST" })).json()) as Json;
    assert.equal(paused.graph.state, "GRAPH_STATE_PAUSED");
    const resumed = await call(`/v1/graphs/${graph.id}:resume`, { method: "POST", body: {} });
    assert.equal(resumed.status, 200);
    assert.equal(((await resumed.json()) as Json).graph.state, "GRAPH_STATE_RUNNING");
    const cancelled = await call(`/v1/graphs/${graph.id}:cancel`, { method: "POST" });
    assert.equal(cancelled.status, 200);
    const body = (await cancelled.json()) as Json;
    assert.equal(body.graph.state, "GRAPH_STATE_CANCELLED");
    assert.ok(body.graph.counts.cancelled > 0);
    await expectError(await call(`/v1/graphs/${graph.id}:cancel`, { method: "POST" }), 409, "FAILED_PRECONDITION", /already been cancelled/);
    await expectError(await call(`/v1/graphs/${graph.id}:cancel`, { method: "POST", body: { force: true } }), 400, "INVALID_ARGUMENT", /unknown field "force"/);
  });

  it("rolls a group back to its previous revision", async () => {
    await update("undo", { count: 1, version: 1 });
    await update("undo", { count: 1, version: 2 });
    const response = await call("/v1/groups/undo:rollback", { method: "POST" });
    assert.equal(response.status, 200);
    const rollback = (await response.json()) as Json;
    assert.equal(rollback.restores, 1);
    assert.equal(rollback.update.revision, 3);
    assert.equal(rollback.update.spec.version, 1);
  });

  it("refuses malformed promotes, describes, rollbacks and spec fields with 400, and unknown graphs and nodes with 404", async () => {
    const unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    await expectError(await call("/v1/graphs/nope:promote", { method: "POST" }), 400, "INVALID_ARGUMENT", /graph id "nope" is invalid/);
    await expectError(await call(`/v1/graphs/${unknown}:promote`, { method: "POST" }), 404, "NOT_FOUND", /graph .* not found/);
    await expectError(await call(`/v1/graphs/${unknown}:promote`, { method: "POST", body: { now: true } }), 400, "INVALID_ARGUMENT", /unknown field "now" in the body: it takes none/);
    await expectError(await call("/v1/nodes/nope:describe"), 400, "INVALID_ARGUMENT", /node id "nope" is invalid/);
    await expectError(await call(`/v1/nodes/${unknown}:describe`), 404, "NOT_FOUND", /node .* not found/);
    await expectError(await call(`/v1/nodes/${unknown}:describe?events=all`), 400, "INVALID_ARGUMENT", /unknown query parameter "events"/);
    const wrongMethod = await call(`/v1/nodes/${unknown}:describe`, { method: "POST" });
    assert.equal(wrongMethod.headers.get("allow"), "GET");
    await expectError(wrongMethod, 405, "UNIMPLEMENTED", /^method POST is not allowed on \/v1\/nodes\/\w+:describe: it takes GET$/);
    await expectError(await call("/v1/groups/default:rollback", { method: "POST", body: { withCount: "yes" } }), 400, "INVALID_ARGUMENT", /^withCount "yes" is invalid: it must be true or false/);

    const spec = (fields: Json) => call("/v1/groups/default/spec", { body: { count: 1, version: 1, ...fields } });
    await expectError(await spec({ minReadyMs: -5 }), 400, "INVALID_ARGUMENT", /^minReadyMs -5 is invalid: it must be a whole number/);
    await expectError(await spec({ canary: 1.5 }), 400, "INVALID_ARGUMENT", /^canary 1.5 is invalid/);
    await expectError(await spec({ autoPromoteAfterMs: "5m" }), 400, "INVALID_ARGUMENT", /^autoPromoteAfterMs "5m" is invalid/);
    await expectError(await spec({ template: { commnd: "node" } }), 400, "INVALID_ARGUMENT", /unknown field "template.commnd" in the body: use command, args, env/);
    await expectError(
      await spec({ template: { command: "node", healthCheck: { type: "HEALTH_CHECK_TYPE_UDP" } } }),
      400,
      "INVALID_ARGUMENT",
      /^template.healthCheck.type "HEALTH_CHECK_TYPE_UDP" is invalid: it must be one of HEALTH_CHECK_TYPE_HTTP/,
    );
    await expectError(await spec({ template: { command: "node", env: { PORT: "80" } } }), 400, "INVALID_ARGUMENT", /PORT is set by the driver/);
    await expectError(await spec({ canary: 2 }), 400, "INVALID_ARGUMENT", /canary 2 is invalid/);
    await expectError(await spec({ autoPromoteAfterMs: 1000 }), 400, "INVALID_ARGUMENT", /without a canary/);
    // A spec as the API returns it is a valid body: the hash the server computes is accepted, and ignored.
    const dryRun = await spec({ templateHash: "0123456789abcdef", template_hash: "", dryRun: true });
    assert.equal(dryRun.status, 200, await dryRun.clone().text());
  });

  it("sets a spec with a template, min-ready, canary and auto-promote, and answers with them", async () => {
    const template = { command: "node", args: ["server.js", "--port={port}"], env: { MODE: "test" }, healthCheck: { type: "HEALTH_CHECK_TYPE_TCP" } };
    const response = await call("/v1/groups/fields/spec", { body: { count: 2, version: 1, template, minReadyMs: 5, canary: 1, autoPromoteAfterMs: 10, dryRun: true } });
    assert.equal(response.status, 200, await response.clone().text());
    const { spec } = (await response.json()) as Json;
    assert.equal(spec.minReadyMs, 5);
    assert.equal(spec.canary, 1);
    assert.equal(spec.autoPromoteAfterMs, 10);
    assert.equal(spec.template.command, "node");
    assert.deepEqual(spec.template.args, template.args);
    assert.deepEqual(spec.template.env, template.env);
    assert.equal(spec.template.healthCheck.type, "HEALTH_CHECK_TYPE_TCP");
    assert.match(spec.templateHash, /^[0-9a-f]{16}$/);
  });

  it("takes max surge and max unavailable as percents, written as Kubernetes does or in the proto's fields, and a spec read back writes back", async () => {
    const response = await call("/v1/groups/percent/spec", { body: { count: 10, version: 1, maxSurge: "25%", max_unavailable: "25%" } });
    assert.equal(response.status, 200, await response.clone().text());
    const { spec } = (await response.json()) as Json;
    // Resolved for readers that know only nodes, and kept as given.
    assert.deepEqual(
      [spec.maxSurge, spec.maxUnavailable, spec.maxSurgePercent, spec.maxUnavailablePercent],
      [3, 2, 25, 25],
    );
    const [revision] = ((await (await call("/v1/groups/percent/revisions")).json()) as Json).revisions as Json[];
    assert.equal(revision.spec.maxSurgePercent, 25);
    // The spec as read, with another version: its percent wins over the nodes it resolved to.
    const again = await call("/v1/groups/percent/spec", { body: { ...revision.spec, count: 20, version: 2, dryRun: true } });
    assert.equal(again.status, 200, await again.clone().text());
    const resolved = ((await again.json()) as Json).spec as Json;
    assert.deepEqual([resolved.maxSurge, resolved.maxUnavailable, resolved.maxSurgePercent], [5, 5, 25]);
    await expectError(await call("/v1/groups/percent/spec", { body: { count: 4, version: 1, maxSurgePercent: 101 } }), 400, "INVALID_ARGUMENT", /^max surge 101% is invalid: a percent must be a whole number from 0% to 100%$/);
    await expectError(await call("/v1/groups/percent/spec", { body: { count: 4, version: 1, maxSurge: "lots" } }), 400, "INVALID_ARGUMENT", /^maxSurge "lots" is invalid: .*a percent of count like "25%"$/);
    await expectError(await call("/v1/groups/percent/spec", { body: { count: 4, version: 1, maxSurge: "0%", maxUnavailable: "0%" } }), 400, "INVALID_ARGUMENT", /both 0/);
  });

  it("promotes a graph waiting at its canary's gate, and refuses one that is not", async () => {
    await update("canary", { count: 3, version: 1 });
    const { graph } = (await (await call("/v1/groups/canary/spec", { body: { count: 3, version: 2, maxSurge: 1, maxUnavailable: 0, canary: 1 } })).json()) as Json;
    const gate = (graph.tasks as Json[]).find((task) => task.action === "TASK_ACTION_AWAIT_PROMOTION")!;
    assert.ok(gate, "the plan has a promote gate");
    await eventually(async () => {
      const { graph: now } = (await (await call(`/v1/graphs/${graph.id}`)).json()) as Json;
      const succeeded = new Set((now.tasks as Json[]).filter((task) => task.state === "TASK_STATE_SUCCEEDED").map((task) => task.id ?? 0));
      return (gate.prerequisites as number[]).every((id) => succeeded.has(id)) ? true : undefined;
    }, "the canary is up");
    const promoted = await call(`/v1/graphs/${graph.id}:promote`, { method: "POST" });
    assert.equal(promoted.status, 200, await promoted.clone().text());
    assert.equal(((await promoted.json()) as Json).graph.id, graph.id);
    const lines = await jsonLines(await call(`/v1/graphs/${graph.id}/events`));
    assert.equal(lines.at(-1)!.event.graphState, "GRAPH_STATE_SUCCEEDED");
    await expectError(await call(`/v1/graphs/${graph.id}:promote`, { method: "POST" }), 409, "FAILED_PRECONDITION");
    const nodes = (await (await call("/v1/groups/canary/nodes")).json()) as Json;
    assert.deepEqual(nodes.nodes.map((node: Json) => node.version), [2, 2, 2]);
  });

  it("describes a node: the node, and its events oldest first", async () => {
    await update("described", { count: 1, version: 1 });
    const [listed] = ((await (await call("/v1/groups/described/nodes")).json()) as Json).nodes as Json[];
    const response = await call(`/v1/nodes/${listed!.id}:describe`);
    assert.equal(response.status, 200, await response.clone().text());
    const described = (await response.json()) as Json;
    assert.equal(described.node.id, listed!.id);
    assert.equal(described.node.state, "NODE_STATE_RUNNING");
    const states = (described.events as Json[]).map((event) => event.nodeState);
    assert.deepEqual(states.slice(-2), ["NODE_STATE_STARTING", "NODE_STATE_RUNNING"]);
    const sequences = (described.events as Json[]).map((event) => event.sequence);
    assert.deepEqual(sequences, [...sequences].sort((a, b) => a - b));
    // The plain GET is still the node's stats.
    assert.equal((((await (await call(`/v1/nodes/${listed!.id}`)).json()) as Json).node as Json).id, listed!.id);
  });

  it("rolls back keeping the current count, or the revision's with withCount", async () => {
    await update("recount", { count: 1, version: 1 });
    await update("recount", { count: 2, version: 2 });
    const kept = (await (await call("/v1/groups/recount:rollback", { method: "POST", body: { revision: 1, dryRun: true } })).json()) as Json;
    assert.deepEqual([kept.update.spec.count, kept.update.spec.version], [2, 1]);
    const restored = (await (await call("/v1/groups/recount:rollback", { method: "POST", body: { revision: 1, withCount: true, dryRun: true } })).json()) as Json;
    assert.deepEqual([restored.update.spec.count, restored.update.spec.version], [1, 1]);
  });

  it("sets a group's template as a new revision, and answers with the update", async () => {
    await update("templated", { count: 1, version: 1 });
    const response = await call("/v1/groups/templated/template", { method: "PUT", body: { command: "node", args: ["app.js"] } });
    assert.equal(response.status, 200, await response.clone().text());
    const body = (await response.json()) as Json;
    assert.equal(body.template.command, "node");
    assert.equal(body.update.revision, 2);
    assert.deepEqual(body.update.spec.template, body.template);
    assert.ok(body.update.graph, "the new template is rolled out");
    // A group with no spec yet keeps the template for its first update: no update to report.
    const waiting = (await (await call("/v1/groups/unborn/template", { method: "PUT", body: { command: "node" } })).json()) as Json;
    assert.equal(waiting.update, undefined);
  });
});

describe("the HTTP API's lifecycle", { timeout: 30_000 }, () => {
  it("ends an open stream when the server stops, saying where to resume", async () => {
    const { server, stop } = await startTestServer({ server: { token: TOKEN, httpListen: "127.0.0.1:0" } });
    let stopped = false;
    try {
      const call = httpClient(`http://127.0.0.1:${server.httpPort}`);
      const response = await call("/v1/groups/default/nodes/events");
      assert.equal(response.status, 200);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      const first = await reader.read();
      assert.match(first.value ?? "", /^\{"snapshot":\{"nodes":\[\],"sequence":0\}\}\n/);
      await stop();
      stopped = true;
      let rest = "";
      for (let next = await reader.read(); !next.done; next = await reader.read()) rest += next.value;
      const last = JSON.parse(rest.trim().split("\n").at(-1)!) as Json;
      assert.equal(last.error.code, "UNAVAILABLE");
      assert.match(last.error.message, /shutting down: resume after sequence \d+/);
    } finally {
      if (!stopped) await stop();
    }
  });

  it("lets go of a watch's subscription when its client goes away", async (t) => {
    const metricsPort = await freePort();
    const { server, stop } = await startTestServer({
      driver: { latency: { min: 2000, max: 2000 } },
      server: { token: TOKEN, httpListen: "127.0.0.1:0", metricsListen: `127.0.0.1:${metricsPort}` },
    });
    t.after(stop);
    const subscribers = async () => Number(/^drover_event_subscribers (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())![1]);
    const baseline = await subscribers();
    const call = httpClient(`http://127.0.0.1:${server.httpPort}`);
    const { graph } = (await (await call("/v1/groups/default/spec", { body: { count: 1, version: 1 } })).json()) as Json;
    const graphWatch = await call(`/v1/graphs/${graph.id}/events`, { headers: { accept: "text/event-stream" } });
    const client = new AbortController();
    const nodeWatch = await fetch(`http://127.0.0.1:${server.httpPort}/v1/groups/default/nodes/events`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: client.signal,
    });
    assert.equal(graphWatch.status, 200);
    assert.equal(nodeWatch.status, 200);
    await eventually(async () => ((await subscribers()) === baseline + 2 ? true : undefined), "both watches subscribed");
    await graphWatch.body!.cancel();
    client.abort();
    await eventually(async () => ((await subscribers()) === baseline ? true : undefined), "both subscriptions closed");
  });

  it("serves HTTPS with the server's certificate", async (t) => {
    const dir = temporaryDataDir(t);
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
    const { server, stop } = await startTestServer({
      server: { token: TOKEN, httpListen: "127.0.0.1:0", tls: { cert: readFileSync(cert), key: readFileSync(key) } },
    });
    t.after(stop);
    const get = (token: string | undefined) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = httpsRequest(
          { host: "localhost", port: server.httpPort, path: "/v1/groups", ca: readFileSync(cert), headers: token ? { authorization: `Bearer ${token}` } : {} },
          (response) => {
            let body = "";
            response.setEncoding("utf8").on("data", (chunk) => (body += chunk));
            response.on("end", () => resolve({ status: response.statusCode!, body }));
          },
        );
        request.on("error", reject).end();
      });
    assert.deepEqual(await get(TOKEN), { status: 200, body: "{}" });
    assert.equal((await get(undefined)).status, 401);
    await assert.rejects(fetch(`http://127.0.0.1:${server.httpPort}/v1/groups/default/nodes`), "plaintext is not served");
  });

  it("refuses --http-listen on a non-loopback address without a token", async (t) => {
    const { exited } = startServer(["--data-dir", temporaryDataDir(t), "--listen", `127.0.0.1:${await freePort()}`, "--http-listen", `0.0.0.0:${await freePort()}`, "--insecure-no-auth"]);
    const { code, stderr } = await exited;
    assert.equal(code, 2);
    assert.match(stderr.trim(), /^server: --insecure-no-auth is refused with --http-listen 0\.0\.0\.0:\d+: without a token only a loopback address/);
    assert.equal(stderr.trim().split("\n").length, 1);
  });

  it("answers curl: with the token it lists nodes and streams a graph's events; without it, 401", { skip: CURL ? false : "curl is not installed" }, async (t) => {
    const dir = temporaryDataDir(t);
    const httpPort = await freePort();
    const server = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${await freePort()}`, "--http-listen", `127.0.0.1:${httpPort}`, "--mock-latency", "50ms..100ms"]);
    t.after(() => server.child.kill("SIGKILL"));
    const base = `http://127.0.0.1:${httpPort}`;
    const token = await eventually(async () => {
      try {
        return readFileSync(join(dir, "token"), "utf8").trim();
      } catch {
        return undefined;
      }
    }, "the server made its token");
    const curl = async (...args: string[]) => (await run(CURL!, ["-sS", ...args], { encoding: "utf8" })).stdout;
    const auth = ["-H", `Authorization: Bearer ${token}`];
    await eventually(async () => ((await curl("-o", "/dev/null", "-w", "%{http_code}", `${base}/v1/groups/default/nodes`).catch(() => "")) === "401" ? true : undefined), "the HTTP API answers");

    const update = JSON.parse(await curl("-X", "PUT", ...auth, "-H", "Content-Type: application/json", "-d", '{"count": 3, "version": 1}', `${base}/v1/groups/default/spec`)) as Json;
    assert.ok(update.graph, `the update answered ${JSON.stringify(update)}`);
    assert.equal(update.graph.tasks.length, 4);
    const lines = (await curl("-N", ...auth, `${base}/v1/groups/default/graphs/latest/events`)).trim().split("\n").map((line) => JSON.parse(line) as Json);
    assert.equal(lines[0]!.snapshot.id, update.graph.id);
    assert.equal(lines.at(-1)!.event.graphState, "GRAPH_STATE_SUCCEEDED");
    const sse = await curl("-N", ...auth, "-H", "Accept: text/event-stream", `${base}/v1/graphs/${update.graph.id}/events`);
    assert.match(sse, /^id: \d+\nevent: snapshot\ndata: \{"id":"/);
    assert.match(sse, /event: end\ndata: \{\}\n\n$/);

    const nodes = JSON.parse(await curl(...auth, `${base}/v1/groups/default/nodes`)) as Json;
    assert.equal(nodes.nodes.length, 3);
    assert.ok(nodes.nodes.every((node: Json) => node.state === "NODE_STATE_RUNNING"));

    assert.equal(await curl("-o", "/dev/null", "-w", "%{http_code}", `${base}/v1/groups/default/nodes`), "401");
    assert.equal(await curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer wrong", `${base}/v1/groups/default/graphs/latest/events`), "401");
    assert.match(await curl("-i", `${base}/v1/groups/default/nodes`), /^HTTP\/1\.1 401 Unauthorized\r\n[\s\S]*www-authenticate: Bearer/i);

    server.child.kill("SIGTERM");
    assert.equal((await server.exited).code, 0);
  });
});
