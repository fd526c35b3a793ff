import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import {
  ALWAYS_IN_JSON,
  FailurePolicy as ApiFailurePolicy,
  Graph,
  ListNodesResponse,
  ListRevisionsResponse,
  SetSpecRequest,
  SetSpecResponse,
  Spec as ApiSpec,
} from "@drover/shared";
import { toApiSpec } from "../src/api/convert.js";
import { requireSpec } from "../src/api/validate.js";
import type { NodeTemplate, Spec } from "../src/domain.js";
import { withDefaults } from "../src/templates.js";
import { startTestServer, type TestServer } from "./support.js";

const TOKEN = "round-trip-test-token-0123456789";
const CLIENT_BIN = fileURLToPath(new URL("../../../bin/client", import.meta.url));
type Json = Record<string, any>;

/** What a client holds after reading JSON: plain data, nothing the encoder knew beyond the text. */
const overTheWire = (value: unknown): Json => JSON.parse(JSON.stringify(value)) as Json;

/** A stored spec read back as the API returns it, sent back as a SetSpec body: what the server makes of it. */
function writtenBack(spec: Spec): Spec {
  const { templateHash: _computedByTheServer, ...body } = overTheWire(ApiSpec.toJSON(toApiSpec(spec)));
  return requireSpec(SetSpecRequest.fromJSON({ ...body, group: "web" }));
}

const healthCheckArb = fc.oneof(
  fc.record({
    type: fc.constant("http" as const),
    path: fc.constantFrom("", "/healthz", "/ready"),
    intervalMs: fc.constantFrom(0, 100, 2500),
    timeoutMs: fc.constantFrom(0, 10, 900),
    failureThreshold: fc.constantFrom(0, 1, 7),
    startTimeoutMs: fc.constantFrom(0, 100, 30_000),
  }),
  fc.record({
    type: fc.constantFrom("tcp" as const, "none" as const),
    path: fc.constant(""),
    intervalMs: fc.constantFrom(0, 100),
    timeoutMs: fc.constantFrom(0, 10),
    failureThreshold: fc.constantFrom(0, 1),
    startTimeoutMs: fc.constantFrom(0, 100),
  }),
);

/** A template as the server stores it: its defaults filled in. */
const templateArb: fc.Arbitrary<NodeTemplate> = fc
  .record({
    command: fc.constantFrom("/bin/sh", "node", "/usr/bin/env"),
    args: fc.array(fc.string({ maxLength: 8 }).filter((arg) => !arg.includes("\0")), { maxLength: 3 }),
    env: fc.dictionary(fc.constantFrom("A", "MODE", "LOG_LEVEL"), fc.string({ maxLength: 6 }).filter((value) => !value.includes("\0")), { maxKeys: 2 }),
    healthCheck: healthCheckArb,
    stopGraceMs: fc.constantFrom(0, 1, 5000),
  })
  // fast-check's dictionaries have no prototype; a template from JSON has Object's.
  .map((template) => withDefaults({ ...template, env: { ...template.env } }));

/** A spec as the server stores it: every default resolved (min-ready, the template and its hash). */
const storedSpecArb: fc.Arbitrary<Spec> = fc
  .record({
    count: fc.integer({ min: 0, max: 100_000 }),
    version: fc.integer({ min: 1, max: 2_147_483_647 }),
    maxSurge: fc.integer({ min: 0, max: 10 }),
    maxUnavailable: fc.integer({ min: 0, max: 10 }),
    onFailure: fc.constantFrom("stop" as const, "rollback" as const),
    taskTimeoutMs: fc.constantFrom(0, 1, 60_000, 86_400_000),
    progressDeadlineMs: fc.constantFrom(0, 1, 600_000),
    cpuMillis: fc.constantFrom(0, 1, 500, 1_024_000),
    memoryMb: fc.constantFrom(0, 1, 256),
    minReadyMs: fc.constantFrom(0, 1, 10_000),
    canary: fc.integer({ min: 0, max: 3 }),
    autoPromoteAfterMs: fc.constantFrom(0, 1, 300_000),
    template: fc.option(templateArb, { nil: undefined }),
    templateHash: fc.constantFrom("", "0123456789abcdef"),
  })
  .filter((spec) => spec.maxSurge + spec.maxUnavailable > 0 && spec.canary <= spec.count && (spec.autoPromoteAfterMs === 0 || spec.canary > 0))
  .map(({ template, ...spec }) => (template === undefined ? spec : { ...spec, template }));

describe("JSON that round-trips", () => {
  it("keeps a spec's count, version, strategy and min-ready in its JSON even at 0, wherever the spec is", () => {
    const spec = ApiSpec.fromPartial({ count: 0, version: 1, maxSurge: 1, maxUnavailable: 0, minReadyMs: 0 });
    const expected = { count: 0, version: 1, maxSurge: 1, maxUnavailable: 0, minReadyMs: 0 };
    assert.deepEqual(ApiSpec.toJSON(spec), expected);
    assert.deepEqual(Object.keys(ApiSpec.toJSON(spec) as object), Object.keys(expected), "in the .proto's order");
    assert.deepEqual((Graph.toJSON(Graph.fromPartial({ id: "g", spec })) as Json).spec, expected, "inside a graph");
    assert.deepEqual((ListRevisionsResponse.toJSON(ListRevisionsResponse.fromPartial({ revisions: [{ revision: 1, spec }] })) as Json).revisions[0].spec, expected);
    assert.deepEqual(SetSpecResponse.toJSON(SetSpecResponse.fromPartial({ group: "web", spec })), { group: "web", revision: 0, spec: expected });
    assert.deepEqual(ListNodesResponse.toJSON(ListNodesResponse.create()), { revision: 0 }, "revision 0 (none yet) is what expectRevision takes back");
    // Other zeros are still left out, as the proto JSON mapping says.
    assert.deepEqual(ApiSpec.toJSON(ApiSpec.fromPartial({ ...spec, onFailure: ApiFailurePolicy.FAILURE_POLICY_STOP, canary: 0, cpuMillis: 0 })), { ...expected, onFailure: "FAILURE_POLICY_STOP" });
    assert.deepEqual(ALWAYS_IN_JSON.Spec, ["count", "version", "maxSurge", "maxUnavailable", "minReadyMs"]);
  });

  it("makes the same spec of any stored spec read back and written back, through the JSON a client sees", () => {
    fc.assert(
      fc.property(storedSpecArb, (spec) => {
        const { templateHash: _computedByTheServer, ...expected } = spec;
        assert.deepEqual(writtenBack(spec), expected);
      }),
      { numRuns: 1000 },
    );
  });
});

/** A curl-like client of the HTTP API with the token and JSON bodies. */
function httpClient(base: string) {
  return async (path: string, body?: unknown): Promise<{ status: number; json: Json }> => {
    const response = await fetch(`${base}${path}`, {
      method: body === undefined ? "GET" : "PUT",
      headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined && { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Json };
  };
}

/** Runs bin/client against the test server, as a program would. */
function client(server: TestServer, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("DROVER_")));
  return new Promise((resolve) => {
    execFile(CLIENT_BIN, ["--server", `127.0.0.1:${server.server.port}`, "--token", TOKEN, ...args], { env, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** A spec as a client may write it: any valid mix of fields given and left out. */
const bodyArb = fc
  .record(
    {
      count: fc.integer({ min: 0, max: 2 }),
      version: fc.integer({ min: 1, max: 1000 }),
      maxSurge: fc.integer({ min: 0, max: 3 }),
      maxUnavailable: fc.integer({ min: 0, max: 3 }),
      onFailure: fc.constantFrom("FAILURE_POLICY_STOP", "FAILURE_POLICY_ROLLBACK"),
      taskTimeoutMs: fc.constantFrom(0, 1000, 86_400_000),
      progressDeadlineMs: fc.constantFrom(0, 600_000),
      cpuMillis: fc.constantFrom(0, 100),
      memoryMb: fc.constantFrom(0, 64),
      minReadyMs: fc.constantFrom(0, 5, 20),
      canary: fc.integer({ min: 0, max: 2 }),
      autoPromoteAfterMs: fc.constantFrom(0, 60_000),
      template: templateArb.map((template) => ({
        ...template,
        healthCheck: { ...template.healthCheck, type: `HEALTH_CHECK_TYPE_${template.healthCheck.type.toUpperCase()}` },
      })),
    },
    { requiredKeys: ["count", "version"] },
  )
  .filter(
    (body) =>
      (body.maxSurge ?? 0) + (body.maxUnavailable ?? 1) > 0 &&
      (body.canary ?? 0) <= body.count &&
      ((body.autoPromoteAfterMs ?? 0) === 0 || (body.canary ?? 0) > 0),
  );

describe("a spec read from the API and written back", { timeout: 120_000 }, () => {
  let server: TestServer;
  let call: ReturnType<typeof httpClient>;
  let groups = 0;

  before(async () => {
    server = await startTestServer({
      server: {
        token: TOKEN,
        httpListen: "127.0.0.1:0",
        // Not 0: an absent min-ready must not read back as one that was set to 0.
        defaultMinReadyMs: 30,
        capacity: { cpuMillis: 1_000_000, memoryMb: 1_000_000 },
      },
    });
    call = httpClient(`http://127.0.0.1:${server.server.httpPort}`);
  });
  after(() => server.stop());

  /** The spec of the group's newest revision, as GET …/revisions returns it. */
  const latestSpec = async (group: string): Promise<Json> => {
    const { status, json } = await call(`/v1/groups/${group}/revisions?limit=1`);
    assert.equal(status, 200, JSON.stringify(json));
    return json.revisions[0].spec as Json;
  };

  /** Stores `body`, reads its spec back, writes that back with the next version, and returns both specs as read. */
  async function roundTrip(group: string, body: Json): Promise<{ read: Json; reread: Json }> {
    const first = await call(`/v1/groups/${group}/spec`, body);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    const read = await latestSpec(group);
    const second = await call(`/v1/groups/${group}/spec`, { ...read, version: read.version + 1 });
    assert.equal(second.status, 200, JSON.stringify(second.json));
    return { read, reread: await latestSpec(group) };
  }

  it("keeps max unavailable 0 (the issue's example): surge 1, unavailable 0 stays so", async () => {
    const { read, reread } = await roundTrip("surge-only", { count: 3, version: 1, maxSurge: 1, maxUnavailable: 0 });
    assert.equal(read.maxUnavailable, 0);
    assert.equal(read.minReadyMs, 30, "the server's default min-ready, resolved when stored");
    assert.deepEqual(reread, { ...read, version: 2 });
  });

  it("keeps every field of any valid spec", async () => {
    await fc.assert(
      fc.asyncProperty(bodyArb, async (body) => {
        const group = `round-trip-${groups++}`;
        const { read, reread } = await roundTrip(group, body);
        assert.deepEqual(reread, { ...read, version: read.version + 1 });
      }),
      { numRuns: 25 },
    );
  });

  it(
    "keeps an older revision's spec that ran the server's default template, written back after the group got its own",
    { todo: "a spec's absent template means the server's default, a SetSpec body's means 'keep the current one': the server could emit the default template and take a template equal to it as the default" },
    async () => {
      await call("/v1/groups/default-template/spec", { count: 0, version: 1 });
      const original = await latestSpec("default-template");
      const templated = await call("/v1/groups/default-template/template", { command: "node", args: ["app.js"] });
      assert.equal(templated.status, 200, JSON.stringify(templated.json));
      await call("/v1/groups/default-template/spec", { ...original, version: 2 });
      assert.deepEqual(await latestSpec("default-template"), { ...original, version: 2 });
    },
  );

  it("keeps the spec the client's 'history -o json' shows", async () => {
    await call("/v1/groups/from-cli/spec", { count: 2, version: 4, maxSurge: 2, maxUnavailable: 0, minReadyMs: 0 });
    const history = async () => {
      const { code, stdout, stderr } = await client(server, ["--group", "from-cli", "-o", "json", "history"]);
      assert.equal(code, 0, stderr);
      return (JSON.parse(stdout) as Json).revisions[0].spec as Json;
    };
    const shown = await history();
    assert.deepEqual([shown.maxUnavailable, shown.minReadyMs], [0, 0]);
    const written = await call("/v1/groups/from-cli/spec", { ...shown, version: shown.version + 1 });
    assert.equal(written.status, 200, JSON.stringify(written.json));
    assert.deepEqual(await history(), { ...shown, version: 5 });
  });
});
