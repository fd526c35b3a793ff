/**
 * The per-group gauges, the count of HTTP requests, and the README's alert for a group that has
 * not converged, evaluated against what a real server's /metrics says of a group mid-rollout
 * and of one that has converged. Prometheus is not here: the test evaluates the alert's
 * expression itself, in the one form the README uses (comparisons of two series joined by
 * `or`), and fails on any other form, so the README and the test cannot drift apart.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { GraphState } from "@drover/shared";
import { Metadata } from "nice-grpc";
import { drain, eventually, startTestServer } from "./support.js";
import { freePort } from "./processes.js";

const TOKEN = "metrics-alert-test-token-0123456789";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (version 0.0.4). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(match, `an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name!] = value!.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

const labelKey = (labels: Record<string, string>) =>
  JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));

type Vector = Map<string, Sample>;

/**
 * Evaluates an instant PromQL expression of the form `a OP b [or c OP d]…`, where each operand
 * is a metric name or a number and OP a comparison, with PromQL's rules: a comparison of two
 * vectors keeps the left samples whose labels match a right sample's exactly and compare true;
 * `or` is the left vector and the right's samples whose labels the left has not.
 */
function evaluate(expression: string, samples: readonly Sample[]): Vector {
  const vectorOf = (operand: string): Vector | number => {
    if (/^-?\d+(\.\d+)?$/.test(operand)) return Number(operand);
    assert.match(operand, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/, `the test evaluates metric names and numbers only, not ${JSON.stringify(operand)}`);
    return new Map(samples.filter((sample) => sample.name === operand).map((sample) => [labelKey(sample.labels), sample]));
  };
  const compare: Record<string, (a: number, b: number) => boolean> = {
    "==": (a, b) => a === b,
    "!=": (a, b) => a !== b,
    ">": (a, b) => a > b,
    "<": (a, b) => a < b,
    ">=": (a, b) => a >= b,
    "<=": (a, b) => a <= b,
  };
  const result: Vector = new Map();
  for (const term of expression.trim().split(/\s+or\s+/)) {
    const parts = /^(\S+)\s*(==|!=|>=|<=|>|<)\s*(\S+)$/.exec(term.trim());
    assert.ok(parts, `the test evaluates comparisons joined by "or", not ${JSON.stringify(term)}`);
    const [left, right] = [vectorOf(parts[1]!), vectorOf(parts[3]!)];
    assert.ok(typeof left !== "number", `the left side of ${term} is a metric`);
    const matched: Vector = new Map();
    for (const [key, sample] of left) {
      const other = typeof right === "number" ? right : right.get(key)?.value;
      if (other !== undefined && compare[parts[2]!]!(sample.value, other)) matched.set(key, sample);
    }
    for (const [key, sample] of matched) if (!result.has(key)) result.set(key, sample);
  }
  return result;
}

/** The README's rule for a group that has not converged: its `expr` and its `for`. */
function readmeAlert(): { expr: string; for: string } {
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
  const rule = /- alert: DroverGroupNotConverged\n\s+expr: (.+)\n\s+for: (\S+)/.exec(readme);
  assert.ok(rule, "the README holds the DroverGroupNotConverged rule, its expr and then its for");
  return { expr: rule[1]!, for: rule[2]! };
}

async function scrape(port: number): Promise<Sample[]> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  return parseExposition(await response.text());
}

const valueOf = (samples: readonly Sample[], name: string, labels: Record<string, string>) =>
  samples.find((sample) => sample.name === name && labelKey(sample.labels) === labelKey(labels))?.value;

describe("metrics for alerting", { timeout: 60_000 }, () => {
  it("fires the README's not-converged alert for a group waiting at its canary's gate, not for a converged one, and not once it is promoted", async (t) => {
    const metricsPort = await freePort();
    const { client, stop } = await startTestServer({ server: { metricsListen: `127.0.0.1:${metricsPort}` } });
    t.after(stop);
    const alert = readmeAlert();
    assert.equal(alert.for, "10m");

    const steady = await client.setSpec({ group: "steady", count: 2, version: 1 });
    await drain(client.watchGraph({ graphId: steady.graph!.id }));
    const first = await client.setSpec({ group: "rolling", count: 2, version: 1 });
    await drain(client.watchGraph({ graphId: first.graph!.id }));
    // One node replaced by v2, then the rollout waits at the promote gate until promoted.
    const canary = await client.setSpec({ group: "rolling", count: 2, version: 2, canary: 1 });
    const waiting = await eventually(async () => {
      const samples = await scrape(metricsPort);
      return valueOf(samples, "drover_group_up_to_date_nodes", { group: "rolling" }) === 1 &&
        valueOf(samples, "drover_group_available_nodes", { group: "rolling" }) === 2
        ? samples
        : undefined;
    }, "the canary is up and the rollout waits at its gate");

    const gauges = (group: string) =>
      Object.fromEntries(
        ["desired_nodes", "desired_version", "revision", "available_nodes", "up_to_date_nodes"].map((name) => [name, valueOf(waiting, `drover_group_${name}`, { group })]),
      );
    assert.deepEqual(gauges("steady"), { desired_nodes: 2, desired_version: 1, revision: 1, available_nodes: 2, up_to_date_nodes: 2 });
    assert.deepEqual(gauges("rolling"), { desired_nodes: 2, desired_version: 2, revision: 2, available_nodes: 2, up_to_date_nodes: 1 });
    const states = (group: string) =>
      waiting.filter((sample) => sample.name === "drover_group_graph_state" && sample.labels.group === group).map((sample) => `${sample.labels.state}=${sample.value}`).sort();
    assert.deepEqual(states("steady"), ["cancelled=0", "failed=0", "paused=0", "pending=0", "running=0", "succeeded=1", "superseded=0"]);
    assert.deepEqual(states("rolling"), ["cancelled=0", "failed=0", "paused=0", "pending=0", "running=1", "succeeded=0", "superseded=0"]);

    const firing = (samples: readonly Sample[]) => [...evaluate(alert.expr, samples).values()].map((sample) => sample.labels.group).sort();
    assert.deepEqual(firing(waiting), ["rolling"]);

    await client.promoteGraph({ graphId: canary.graph!.id });
    const [, end] = [await drain(client.watchGraph({ graphId: canary.graph!.id })), await client.getGraph({ graphId: canary.graph!.id })];
    assert.equal(end.graph!.state, GraphState.GRAPH_STATE_SUCCEEDED);
    const converged = await scrape(metricsPort);
    assert.equal(valueOf(converged, "drover_group_up_to_date_nodes", { group: "rolling" }), 2);
    assert.deepEqual(firing(converged), []);
  });

  it("evaluates the alert's form as PromQL does: label sets matched exactly, or as a union", () => {
    const sample = (name: string, group: string, value: number): Sample => ({ name, labels: { group }, value });
    const samples = [
      sample("drover_group_desired_nodes", "a", 3),
      sample("drover_group_desired_nodes", "b", 3),
      sample("drover_group_desired_nodes", "c", 0),
      sample("drover_group_up_to_date_nodes", "a", 3),
      sample("drover_group_up_to_date_nodes", "b", 3),
      sample("drover_group_up_to_date_nodes", "c", 0),
      sample("drover_group_available_nodes", "a", 3),
      sample("drover_group_available_nodes", "b", 4),
      sample("drover_group_available_nodes", "c", 0),
    ];
    const groups = (expression: string) => [...evaluate(expression, samples).values()].map((found) => found.labels.group).sort();
    assert.deepEqual(groups(readmeAlert().expr), ["b"], "old nodes still serving beside the new ones: not converged");
    assert.deepEqual(groups("drover_group_desired_nodes > 0"), ["a", "b"]);
    assert.deepEqual(groups("drover_group_available_nodes > 3 or drover_group_desired_nodes == 0"), ["b", "c"]);
    assert.throws(() => evaluate("sum(drover_group_desired_nodes) > 0", samples), /evaluates/);
  });

  it("counts HTTP requests by method, route pattern and status, refusals included, and never by raw URL", async (t) => {
    const metricsPort = await freePort();
    const { server, client, stop } = await startTestServer({ server: { token: TOKEN, httpListen: "127.0.0.1:0", metricsListen: `127.0.0.1:${metricsPort}` } });
    t.after(stop);
    // Groups that exist (a read of one that does not is 404), made over gRPC, which the HTTP counter does not see.
    const metadata = Metadata({ authorization: `Bearer ${TOKEN}` });
    for (const group of ["web", "db"]) await client.setSpec({ group, count: 0, version: 1 }, { metadata });
    const base = `http://127.0.0.1:${server.httpPort}`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const statusOf = async (path: string, init: RequestInit = {}) => (await fetch(`${base}${path}`, init)).status;
    assert.equal(await statusOf("/v1/groups/web/nodes", { headers: auth }), 200);
    assert.equal(await statusOf("/v1/groups/db/nodes", { headers: auth }), 200);
    assert.equal(await statusOf("/v1/groups/web/nodes"), 401);
    assert.equal(await statusOf("/v1/groups/web/nodes", { headers: { ...auth, origin: "https://evil.example" } }), 403);
    assert.equal(await statusOf("/v1/no/such/route", { headers: auth }), 404);
    assert.equal(await statusOf("/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV", { method: "DELETE", headers: auth }), 405);
    assert.equal(await statusOf("/v1/groups/web/spec", { method: "PUT", headers: { ...auth, "content-type": "text/plain" }, body: "{}" }), 415);
    assert.equal(await statusOf("/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV:cancel", { method: "POST", headers: { ...auth, "content-type": "application/json" } }), 404);
    assert.equal(await statusOf("/v1/groups/%zz/nodes", { headers: auth }), 400);

    const samples = await eventually(async () => {
      const scraped = await scrape(metricsPort);
      const total = scraped.filter((sample) => sample.name === "drover_http_requests_total").reduce((sum, sample) => sum + sample.value, 0);
      return total === 9 ? scraped : undefined;
    }, "every request is counted");
    assert.equal(valueOf(samples, "drover_http_requests_total", { method: "GET", route: "none", code: "400" }), 1, "a URL fastify cannot decode");
    const counted = (method: string, route: string, code: string) => valueOf(samples, "drover_http_requests_total", { method, route, code });
    assert.equal(counted("GET", "/v1/groups/:group/nodes", "200"), 2, "both groups under one route");
    assert.equal(counted("GET", "/v1/groups/:group/nodes", "401"), 1);
    assert.equal(counted("GET", "/v1/groups/:group/nodes", "403"), 1);
    assert.equal(counted("GET", "none", "404"), 1);
    assert.equal(counted("DELETE", "/v1/graphs/:id", "405"), 1);
    assert.equal(counted("PUT", "/v1/groups/:group/spec", "415"), 1);
    assert.equal(counted("POST", "/v1/graphs/:id:cancel", "404"), 1, "a custom method's route reads as its path does");
    const labels = samples.filter((sample) => sample.name === "drover_http_requests_total").map((sample) => sample.labels.route!);
    assert.ok(!labels.some((route) => /web|db|01ARZ|%zz/.test(route)), `no raw URL among ${labels.join(", ")}`);
  });
});
