import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ChannelCredentials } from "@grpc/grpc-js";
import { DroverServiceDefinition } from "@drover/shared";
import { createChannel, createClient, Metadata, Status } from "nice-grpc";
import { HealthDefinition } from "nice-grpc-server-health";
import { ServerReflectionService } from "nice-grpc-server-reflection";
import { drain, eventually, expectStatus, startTestServer, temporaryDataDir } from "./support.js";
import { freePort, startServer, waitUntilServing } from "./processes.js";

const require = createRequire(import.meta.url);
const { ServerReflectionRequest } = require("nice-grpc-server-reflection/lib/proto/grpc/reflection/v1/reflection_pb.js") as {
  ServerReflectionRequest: new () => { setListServices(value: string): unknown; setFileContainingSymbol(value: string): unknown };
};

const bearer = (token: string) => ({ metadata: Metadata({ authorization: `Bearer ${token}` }) });

describe("security and the API's edges", { timeout: 60_000 }, () => {
  it("makes a token on first start, keeps it private, and refuses calls without it", async (t) => {
    const dir = temporaryDataDir(t);
    const configHome = temporaryDataDir(t);
    const port = await freePort();
    const server = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`], { XDG_CONFIG_HOME: configHome });
    t.after(() => server.child.kill("SIGKILL"));
    const client = await waitUntilServing(port, dir);
    const tokenFile = join(dir, "token");
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    const token = readFileSync(tokenFile, "utf8").trim();
    assert.ok(token.length >= 40);

    const credentials = join(configHome, "drover", "credentials.json");
    await eventually(async () => (statSync(credentials, { throwIfNoEntry: false }) ? true : undefined), "the credentials file exists");
    assert.equal(statSync(credentials).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(credentials, "utf8")).servers[`127.0.0.1:${port}`], { token });

    const anonymous = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${port}`));
    await expectStatus(anonymous.listNodes({}), Status.UNAUTHENTICATED, /missing token/);
    await expectStatus(anonymous.listNodes({}, bearer("not-the-token")), Status.UNAUTHENTICATED, /wrong token/);
    await expectStatus(anonymous.listNodes({}, { metadata: Metadata({ authorization: token }) }), Status.UNAUTHENTICATED, /wrong token/);
    await expectStatus(drain(anonymous.watchGraph({})), Status.UNAUTHENTICATED);
    await expectStatus(anonymous.setSpec({ count: 1, version: 1 }), Status.UNAUTHENTICATED);
    // Nothing was changed by refused calls: the group was never made.
    await expectStatus(client.listRevisions({}), Status.NOT_FOUND, /group default does not exist/);
    assert.deepEqual((await anonymous.listGroups({}, bearer(token))).groups, []);

    // The health service answers anyone, as a load balancer's probe needs.
    const health = createClient(HealthDefinition, createChannel(`127.0.0.1:${port}`));
    assert.equal((await health.check({ service: "" })).status, 1 /* SERVING */);

    server.child.kill("SIGTERM");
    await server.exited;
    const again = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`], { XDG_CONFIG_HOME: configHome });
    t.after(() => again.child.kill("SIGKILL"));
    await waitUntilServing(port, dir);
    assert.equal(readFileSync(tokenFile, "utf8").trim(), token, "the token survives a restart");
  });

  it("refuses to serve without a token on a non-loopback address", async (t) => {
    const { exited } = startServer(["--data-dir", temporaryDataDir(t), "--listen", `0.0.0.0:${await freePort()}`, "--insecure-no-auth"]);
    const { code, stderr } = await exited;
    assert.equal(code, 2);
    assert.match(stderr.trim(), /^server: --insecure-no-auth is refused with --listen 0\.0\.0\.0:\d+: without a token only a loopback address/);
    assert.equal(stderr.trim().split("\n").length, 1);
  });

  it("serves over TLS with a certificate made here, and refuses plaintext", async (t) => {
    const dir = temporaryDataDir(t);
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
    const port = await freePort();
    const server = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`, "--tls-cert", cert, "--tls-key", key]);
    t.after(() => server.child.kill("SIGKILL"));
    await eventually(async () => (statSync(join(dir, "token"), { throwIfNoEntry: false }) ? true : undefined), "the token exists");
    const token = readFileSync(join(dir, "token"), "utf8").trim();
    const secure = createClient(DroverServiceDefinition, createChannel(`localhost:${port}`, ChannelCredentials.createSsl(readFileSync(cert))));
    await eventually(async () => secure.listGroups({}, bearer(token)).then(() => true, () => undefined), "the TLS server answers");
    await expectStatus(secure.listNodes({}, bearer("wrong")), Status.UNAUTHENTICATED, /wrong token/);
    await expectStatus(secure.listNodes({}), Status.UNAUTHENTICATED, /missing token/);
    const plaintext = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${port}`));
    await expectStatus(plaintext.listNodes({}, { ...bearer(token), signal: AbortSignal.timeout(5000) }), Status.UNAVAILABLE);
  });

  it("lists the drover.v1 service and the health service, and describes their methods through server reflection", async (t) => {
    const { server, stop } = await startTestServer();
    t.after(stop);
    const reflection = createClient(ServerReflectionService, createChannel(`127.0.0.1:${server.port}`));
    async function* ask(build: (request: InstanceType<typeof ServerReflectionRequest>) => void) {
      const request = new ServerReflectionRequest();
      build(request);
      yield request;
    }
    const answers = [];
    for await (const answer of reflection.serverReflectionInfo(ask((request) => request.setListServices("*")) as never)) answers.push(answer);
    const services = (answers[0] as { getListServicesResponse(): { getServiceList(): { getName(): string }[] } })
      .getListServicesResponse()
      .getServiceList()
      .map((service) => service.getName());
    assert.deepEqual(services, ["drover.v1.DroverService", "grpc.health.v1.Health"]);
    const described = [];
    for await (const answer of reflection.serverReflectionInfo(ask((request) => request.setFileContainingSymbol("drover.v1.DroverService")) as never)) {
      described.push(answer);
    }
    const files = (described[0] as { getFileDescriptorResponse(): { getFileDescriptorProtoList_asU8(): Uint8Array[] } })
      .getFileDescriptorResponse()
      .getFileDescriptorProtoList_asU8();
    const text = Buffer.concat(files.map((file) => Buffer.from(file))).toString("latin1");
    for (const method of ["SetSpec", "WatchGraph", "ListRevisions", "RestartNode"]) assert.ok(text.includes(method), `the descriptor names ${method}`);
  });

  it("reports NOT_SERVING through the health service while shutting down", async (t) => {
    const { server, client, stop } = await startTestServer({ driver: { latency: { min: 300, max: 300 } } });
    let stopped = false;
    t.after(async () => {
      if (!stopped) await stop();
    });
    const health = createClient(HealthDefinition, createChannel(`127.0.0.1:${server.port}`));
    const statuses: number[] = [];
    const watching = (async () => {
      try {
        for await (const answer of health.watch({ service: "" })) statuses.push(answer.status);
      } catch {
        // The stream ends with the server.
      }
    })();
    await eventually(async () => (statuses.includes(1) ? true : undefined), "the health watch said SERVING");
    await client.setSpec({ count: 2, version: 1 });
    const stopping = stop();
    stopped = true;
    await eventually(async () => (statuses.includes(2) ? true : undefined), "the health watch said NOT_SERVING");
    await stopping;
    await watching;
    assert.deepEqual(statuses.slice(0, 2), [1, 2]);
  });

  it("serves Prometheus metrics that count what a known sequence of updates did", async (t) => {
    const dir = temporaryDataDir(t);
    const port = await freePort();
    const metricsPort = await freePort();
    const server = startServer(["--data-dir", dir, "--listen", `127.0.0.1:${port}`, "--metrics-listen", `127.0.0.1:${metricsPort}`, "--mock-latency", "5ms..10ms"]);
    t.after(() => server.child.kill("SIGKILL"));
    const client = await waitUntilServing(port, dir);
    for (const spec of [{ count: 3, version: 1 }, { count: 3, version: 2 }, { count: 1, version: 2 }]) {
      const { graph } = await client.setSpec(spec);
      await drain(client.watchGraph({ graphId: graph!.id }));
    }
    await expectStatus(client.setSpec({ count: 1, version: 0 }), Status.INVALID_ARGUMENT);
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
    // 3 starts, then 3 shut-downs and 3 starts, then 2 shut-downs; and a join for the first and last graphs.
    assert.equal(value(/^drover_tasks_total\{action="start_node",outcome="succeeded"\} (\d+)$/m), 6);
    assert.equal(value(/^drover_tasks_total\{action="shut_down_node",outcome="succeeded"\} (\d+)$/m), 5);
    assert.equal(value(/^drover_tasks_total\{action="do_nothing",outcome="succeeded"\} (\d+)$/m), 2);
    assert.equal(value(/^drover_graph_duration_seconds_count\{outcome="succeeded"\} (\d+)$/m), 3);
    assert.equal(value(/^drover_nodes\{group="default",state="running",version="2"\} (\d+)$/m), 1);
    assert.equal(value(/^drover_rpcs_total\{method="\/drover\.v1\.DroverService\/SetSpec",code="OK"\} (\d+)$/m), 3);
    assert.equal(value(/^drover_rpcs_total\{method="\/drover\.v1\.DroverService\/SetSpec",code="INVALID_ARGUMENT"\} (\d+)$/m), 1);
    assert.ok(value(/^drover_task_duration_seconds_count\{action="start_node"\} (\d+)$/m) >= 6);
    // Every sample line parses as Prometheus text: name{labels} value.
    for (const line of text.split("\n").filter((line) => line && !line.startsWith("#"))) {
      assert.match(line, /^[a-z_]+(\{[^}]*\})? [-+0-9.eEInfa]+$/, line);
    }
  });
});
