/**
 * What the HTTP listener serves beside the operations: /healthz for probes, a group's spec as
 * PUT takes it, a merge patch of a template, and the OpenAPI document made from the routes.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { RouteOptions } from "fastify";
import { HttpApi } from "../src/http/HttpApi.js";
import type { SqliteStore } from "../src/store/SqliteStore.js";
import type { Store } from "../src/store/Store.js";
import { eventually, silentLogger, startTestServer, type TestServer } from "./support.js";

const TOKEN = "http-niceties-token-0123456789abcdef";
type Json = Record<string, any>;

function httpClient(base: string) {
  return (path: string, options: { method?: string; body?: unknown; token?: string | null; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? TOKEN : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const method = options.method ?? (body === undefined ? "GET" : "PUT");
    if (method !== "GET") headers["content-type"] ??= "application/json";
    return fetch(`${base}${path}`, { method, headers, body });
  };
}

async function json(response: Response, status = 200): Promise<Json> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  return JSON.parse(text) as Json;
}

/** The real store, whose probe write fails with a full disk while `full()` says so. */
function fillingStore(store: SqliteStore, full: () => boolean): Store {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property) as unknown;
      if (typeof value !== "function") return value;
      const operation = (value as (...args: unknown[]) => unknown).bind(target);
      if (property !== "probeWrite") return operation;
      return async (...args: unknown[]) => {
        if (full()) throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
        return operation(...args);
      };
    },
  });
}

describe("the HTTP listener's niceties", { timeout: 60_000 }, () => {
  let server: TestServer;
  let call: ReturnType<typeof httpClient>;
  let diskFull = false;

  before(async () => {
    server = await startTestServer({
      server: { token: TOKEN, httpListen: "127.0.0.1:0", storageProbeIntervalMs: 50 },
      wrapStore: (store) => fillingStore(store, () => diskFull),
    });
    call = httpClient(`http://127.0.0.1:${server.server.httpPort}`);
  });
  after(() => server.stop());

  /** Reads a graph's events to its end. */
  async function settled(graphId: string): Promise<void> {
    const response = await call(`/v1/graphs/${graphId}/events`);
    assert.equal(response.status, 200);
    await response.text();
  }

  it("answers GET /healthz without a token: 200 ok, 503 with the reason while the disk is full, and refuses web pages", async () => {
    const healthy = await call("/healthz", { token: null });
    assert.equal(healthy.status, 200);
    assert.match(healthy.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(await healthy.text(), "ok");
    assert.equal((await call("/healthz", { token: "wrong" })).status, 200, "a token is not looked at");
    const foreign = await call("/healthz", { token: null, headers: { origin: "https://evil.example" } });
    assert.equal(foreign.status, 403);
    const post = await call("/healthz", { token: null, method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET");

    diskFull = true;
    try {
      const unhealthy = await eventually(async () => {
        const response = await call("/healthz", { token: null });
        return response.status === 503 ? response : undefined;
      }, "/healthz answers 503");
      assert.match(await unhealthy.text(), /^the database's disk is full \(SQLITE_FULL\)/);
    } finally {
      diskFull = false;
    }
    await eventually(async () => ((await call("/healthz", { token: null })).status === 200 ? true : undefined), "/healthz answers 200 again");
  });

  it("reads a group's spec as PUT takes it, with its revision as the ETag, and a spec read writes back unchanged", async () => {
    await json(await call("/v1/groups/specs/spec"), 404).then((body) => assert.match(body.error.message, /^group specs does not exist: list groups with 'client groups ls'/));
    const put = await json(await call("/v1/groups/specs/spec", { body: { count: 2, version: 3, maxSurge: "50%", template: { command: "app", env: { A: "1" } } } }));
    // Written back while its rollout still ran, it would supersede it: a new revision.
    await settled(put.graph.id);
    const response = await call("/v1/groups/specs/spec");
    assert.equal(response.headers.get("etag"), `"${put.revision}"`);
    const spec = await json(response);
    assert.deepEqual(spec, put.spec);
    assert.equal(spec.maxSurgePercent, 50);
    const again = await json(await call("/v1/groups/specs/spec", { body: spec }));
    assert.equal(again.revision, put.revision, "the same spec: no new revision");
    assert.equal(again.nothingToDo, true);
  });

  it("patches a template as a JSON merge patch: absent fields kept, null removed, env key by key, a list replaced", async () => {
    await json(await call("/v1/groups/patched/template", { body: { command: "app", args: ["--a"], env: { KEEP: "1", DROP: "2", CHANGE: "3" }, stopGraceMs: 2000 } }));
    await json(await call("/v1/groups/patched/spec", { body: { count: 1, version: 1 } }));
    const patched = await json(
      await call("/v1/groups/patched/template", {
        method: "PATCH",
        headers: { "content-type": "application/merge-patch+json" },
        body: { args: ["--b", "--c"], env: { DROP: null, CHANGE: "4", NEW: "5" }, stop_grace_ms: null, healthCheck: { type: "HEALTH_CHECK_TYPE_TCP", path: null } },
      }),
    );
    assert.equal(patched.template.command, "app");
    assert.deepEqual(patched.template.args, ["--b", "--c"]);
    assert.deepEqual(patched.template.env, { KEEP: "1", CHANGE: "4", NEW: "5" });
    assert.equal(patched.template.stopGraceMs, 5000, "removed: back to the default");
    assert.equal(patched.template.healthCheck.type, "HEALTH_CHECK_TYPE_TCP");
    assert.equal(patched.update.revision, 2, "a group with a spec rolls the template out as a new revision");
    assert.deepEqual((await json(await call("/v1/groups/patched/template"))).template, patched.template);
    await settled(patched.update.graph.id);

    // Plain JSON is a merge patch too; an empty one changes nothing.
    const same = await json(await call("/v1/groups/patched/template", { method: "PATCH", body: {} }));
    assert.equal(same.update.revision, 2);
    assert.equal(same.update.nothingToDo, true);
  });

  it("lands every one of concurrent patches, each made under the group's lock", async () => {
    await json(await call("/v1/groups/racing/spec", { body: { count: 0, version: 1, template: { command: "app" } } }));
    const names = Array.from({ length: 8 }, (_, index) => `VAR_${index}`);
    await Promise.all(names.map(async (name) => json(await call("/v1/groups/racing/template", { method: "PATCH", body: { env: { [name]: "set" } } }))));
    const { template } = await json(await call("/v1/groups/racing/template"));
    assert.deepEqual(Object.keys(template.env).sort(), names);
  });

  it("patches the server's default template of a group that has none, and refuses what a template cannot hold", async () => {
    const defaults = await json(await call("/v1/groups/fresh/template"));
    assert.equal(defaults.isDefault, true);
    const patched = await json(await call("/v1/groups/fresh/template", { method: "PATCH", body: { env: { MODE: "test" } } }));
    assert.equal(patched.template.command, defaults.template.command);
    assert.deepEqual(patched.template.env, { MODE: "test" });
    assert.equal(patched.update, undefined, "no spec yet: the template waits for the first update");
    assert.equal((await json(await call("/v1/groups/fresh/template"))).isDefault, undefined);

    const patch = (body: string, contentType = "application/merge-patch+json") =>
      fetch(`http://127.0.0.1:${server.server.httpPort}/v1/groups/fresh/template`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": contentType },
        body,
      });
    const refused = async (response: Response, status: number, message: RegExp) => assert.match((await json(response, status)).error.message, message);
    await refused(await patch('{"env": {"__proto__": "x"}}'), 400, /env name __proto__ is refused/);
    await refused(await patch('{"comand": "x"}'), 400, /unknown field "comand" in the body: use command, args, env, healthCheck, stopGraceMs/);
    await refused(await patch('{"env": {"A": {"b": 1}}}'), 400, /env\.A \{"b":1\} is invalid: it must be a string, or null to remove it/);
    await refused(await patch('{"command": null}'), 400, /command is empty/);
    await refused(await patch("{}", "text/plain"), 415, /'Content-Type: application\/merge-patch\+json' or 'Content-Type: application\/json'/);
    assert.deepEqual((await json(await call("/v1/groups/fresh/template"))).template.env, { MODE: "test" }, "refused patches changed nothing");
  });
});

describe("the OpenAPI document", { timeout: 60_000 }, () => {
  it("describes every route fastify registers, with its method, from the routes' own schemas", async () => {
    const api = new HttpApi({ service: {} as never, logger: silentLogger });
    const routes: RouteOptions[] = [];
    api.app.addHook("onRoute", (route) => void routes.push(route));
    await api.listen("127.0.0.1:0");
    try {
      const port = (api.app.server.address() as { port: number }).port;
      const document = (await (await fetch(`http://127.0.0.1:${port}/v1/openapi.json`)).json()) as Json;
      assert.equal(document.openapi, "3.1.0");
      // `/v1/graphs/:id(^[^:]+)::cancel` is `/v1/graphs/{id}:cancel`.
      const openApiPath = (url: string) => url.replace(/::/g, "\0").replace(/:(\w+)(\([^)]*\))?/g, "{$1}").replace(/\0/g, ":");
      const described = routes.filter((route) => !route.schema?.hide);
      assert.ok(described.length >= 25, `the API's routes were seen (${described.length})`);
      for (const route of described) {
        for (const method of [route.method].flat()) {
          const operation = document.paths[openApiPath(route.url)]?.[method.toLowerCase()];
          assert.ok(operation, `${method} ${route.url} is in the document`);
        }
      }
      // A hidden route answers 405 for the methods a path does not take: none of them is an operation.
      for (const route of routes.filter((candidate) => candidate.schema?.hide)) {
        for (const method of [route.method].flat()) assert.equal(document.paths[openApiPath(route.url)]?.[method.toLowerCase()], undefined);
      }
      const operations = Object.values(document.paths as Json).flatMap((path) => Object.keys(path as Json));
      assert.equal(operations.length, described.flatMap((route) => [route.method].flat()).length, "nothing in the document that is not a route");

      // The schemas fastify validates with: a PUT of a spec requires count and version, a patch takes null.
      const setSpec = document.paths["/v1/groups/{group}/spec"].put.requestBody.content["application/json"].schema;
      assert.deepEqual(setSpec.required, ["count", "version"]);
      assert.equal(setSpec.additionalProperties, false);
      assert.ok(!("max_surge" in setSpec.properties), "snake_case twins are left out");
      const patch = document.paths["/v1/groups/{group}/template"].patch.requestBody.content;
      assert.deepEqual(Object.keys(patch), ["application/merge-patch+json", "application/json"]);
      assert.deepEqual(patch["application/json"].schema.properties.command.type, ["string", "null"]);
      assert.deepEqual(document.paths["/healthz"].get.security, [], "/healthz needs no token");
    } finally {
      await api.close();
    }
  });

  it("is served with the token, as every path under /v1/", async (t) => {
    const { server, stop } = await startTestServer({ server: { token: TOKEN, httpListen: "127.0.0.1:0" } });
    t.after(stop);
    const call = httpClient(`http://127.0.0.1:${server.httpPort}`);
    assert.equal((await call("/v1/openapi.json", { token: null })).status, 401);
    const document = await json(await call("/v1/openapi.json"));
    assert.deepEqual(document.security, [{ bearer: [] }]);
    assert.ok(document.paths["/v1/groups/{group}/spec"].get);
  });
});
