/**
 * SetTemplate's template_patch: RFC 7386 merge patch of a template, as a function and over
 * gRPC, where the patch travels as a google.protobuf.Struct.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Client, credentials, type ServiceError } from "@grpc/grpc-js";
import { BinaryWriter, HealthCheckType, NodeTemplate } from "@drover/shared";
import { Status } from "nice-grpc";
import { patchTemplate } from "../src/api/templatePatch.js";
import { InvalidArgumentError } from "../src/errors.js";
import { expectStatus, startTestServer } from "./support.js";

const current = NodeTemplate.fromPartial({
  command: "node",
  args: ["app.js"],
  env: { LOG: "info", OLD: "1" },
  healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "/healthz", intervalMs: 1000 },
  stopGraceMs: 3000,
});

describe("template patches", { timeout: 60_000 }, () => {
  it("merges as RFC 7386 says: absent kept, null removed, objects key by key, lists replaced", () => {
    const patched = patchTemplate(current, { args: ["app.js", "--v"], env: { LOG: "debug", OLD: null, NEW: "x" }, health_check: { path: null }, stopGraceMs: null });
    assert.equal(patched.command, "node");
    assert.deepEqual(patched.args, ["app.js", "--v"]);
    assert.deepEqual(patched.env, { LOG: "debug", NEW: "x" });
    assert.deepEqual([patched.healthCheck?.type, patched.healthCheck?.path, patched.healthCheck?.intervalMs], [HealthCheckType.HEALTH_CHECK_TYPE_HTTP, "", 1000]);
    assert.equal(patched.stopGraceMs, 0, "removed: the server's default fills it");
    assert.deepEqual(patchTemplate(current, {}), current);
    assert.deepEqual(patchTemplate(current, { healthCheck: null }).healthCheck, undefined);
  });

  it("refuses what is not a template's field or has the wrong type, naming it", () => {
    const refused = (patch: Record<string, unknown>, message: RegExp) =>
      assert.throws(() => patchTemplate(current, patch), (error: unknown) => error instanceof InvalidArgumentError && message.test(error.message));
    refused({ comand: "x" }, /^template_patch: field "comand" is not a field of a template: use command, args, env, healthCheck, stopGraceMs$/);
    refused({ stopGraceMs: 1, stop_grace_ms: 2 }, /field "stop_grace_ms" is given twice/);
    refused({ healthCheck: { every: 1 } }, /^template_patch\.healthCheck: field "every" is not a field of a health check/);
    refused({ args: "app.js" }, /^template_patch\.args "app\.js" is invalid: it must be a list of strings, or null to remove it$/);
    refused({ env: { A: 1 } }, /^template_patch\.env\.A 1 is invalid: it must be a string, or null/);
    refused({ env: JSON.parse('{"__proto__": "x"}') }, /env name __proto__ is refused/);
  });

  it("patches a group's template over gRPC, and refuses a patch with a __proto__ key before it loses it", async (t) => {
    const { server, client, stop } = await startTestServer();
    t.after(stop);
    const address = `127.0.0.1:${server.port}`;
    await client.setSpec({ group: "web", count: 0, version: 1, template: { command: "app", env: { A: "1", B: "2" } } });
    const answer = await client.setTemplate({ group: "web", templatePatch: { env: { A: null, C: "3" }, args: ["--x"] } });
    assert.deepEqual(answer.template!.env, { B: "2", C: "3" });
    assert.deepEqual(answer.template!.args, ["--x"]);
    assert.equal(answer.update!.revision, 2);
    assert.deepEqual((await client.getTemplate({ group: "web" })).template!.env, { B: "2", C: "3" });

    await expectStatus(client.setTemplate({ group: "web", template: { command: "app" }, templatePatch: {} }), Status.INVALID_ARGUMENT, /template and template_patch are both given/);
    // A Struct key __proto__ would vanish as the request is decoded (the generated client cannot
    // even send one): the raw bytes of {"env": {"__proto__": "x"}} are refused.
    const w = new BinaryWriter();
    w.uint32((1 << 3) | 2).string("web");
    w.uint32((3 << 3) | 2).fork(); // template_patch: a Struct
    w.uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).string("env"); // fields entry "env"
    w.uint32((2 << 3) | 2).fork().uint32((5 << 3) | 2).fork(); // a Value holding a Struct
    w.uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).string("__proto__"); // fields entry "__proto__"
    w.uint32((2 << 3) | 2).fork().uint32((3 << 3) | 2).string("x").join(); // a Value holding "x"
    w.join().join().join().join().join();
    const raw = new Client(address, credentials.createInsecure());
    t.after(() => raw.close());
    const refusal = await new Promise<ServiceError>((resolve, reject) =>
      raw.makeUnaryRequest("/drover.v1.DroverService/SetTemplate", (bytes: Buffer) => bytes, (bytes: Buffer) => bytes, Buffer.from(w.finish()), (error) =>
        error ? resolve(error) : reject(new Error("the patch was taken")),
      ),
    );
    assert.equal(refusal.code, Status.INVALID_ARGUMENT);
    assert.match(refusal.details, /^template_patch key __proto__ is refused/);
    assert.deepEqual((await client.getTemplate({ group: "web" })).template!.env, { B: "2", C: "3" });
  });
});
