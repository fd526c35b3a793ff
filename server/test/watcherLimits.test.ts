import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ChannelCredentials, createChannel, createClient, Status } from "nice-grpc";
import { HealthDefinition } from "nice-grpc-server-health";
import type { DroverServerOptions } from "../src/DroverServer.js";
import { EventBus } from "../src/events/EventBus.js";
import type { Event } from "../src/domain.js";
import { freePort } from "./processes.js";
import { eventually, expectStatus, startTestServer, temporaryDataDir } from "./support.js";

/** A metric of the server's /metrics, summed over its labels. */
async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

/** A real server with fast simulated nodes and its metrics served (they count its watch subscriptions). */
async function watchedServer(t: { after: (fn: () => Promise<void>) => void }, server: Partial<DroverServerOptions> = {}) {
  const metricsPort = await freePort();
  const test = await startTestServer({
    driver: { latency: { min: 0, max: 1 } },
    server: { parallelism: 64, metricsListen: `127.0.0.1:${metricsPort}`, ...server },
  });
  t.after(test.stop);
  const subscriptions = () => metric(metricsPort, "drover_event_subscribers");
  return { ...test, metricsPort, subscriptions, idle: await subscriptions() };
}

function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return Promise.race([once(socket, "close").then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, ms, false))]);
}

/** A TCP connection that reads (and drops) whatever the server sends, so that it sees the server close it. */
function rawConnection(port: number): Promise<Socket> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.resume();
  return once(socket, "connect").then(() => socket);
}

describe("a subscription", () => {
  const event = (sequence: number): Event => ({ sequence, time: 0, type: "node", group: "g", nodeId: "n", state: "running" }) as Event;

  it("counts the events of its last two takes toward its capacity: the stream may not have sent them yet", async () => {
    const bus = new EventBus();
    const subscription = bus.subscribe(() => true, 3);
    const signal = new AbortController().signal;
    bus.publish([event(1), event(2)]);
    assert.deepEqual((await subscription.take(signal)).map((e) => e.sequence), [1, 2]);
    bus.publish([event(3)]);
    assert.deepEqual((await subscription.take(signal)).map((e) => e.sequence), [3]);
    assert.equal(subscription.overflowed.aborted, false, "three handed out: at its capacity, not over");
    bus.publish([event(4)]);
    assert.equal(subscription.overflowed.aborted, true, "the events handed out are not yet sent: they count");
  });

  it("drops its queue and leaves the bus the moment it overflows, not when it is next read", async () => {
    const bus = new EventBus();
    const subscription = bus.subscribe(() => true, 2);
    bus.publish([event(1), event(2), event(3)]);
    assert.equal(subscription.overflowed.aborted, true);
    assert.equal(subscription.overflowReason, "behind");
    assert.equal(bus.subscriberCount, 0);
    assert.equal(bus.backlogEvents, 0, "what it held is let go");
    assert.deepEqual(await subscription.take(new AbortController().signal), []);
  });

  it("ends those furthest behind when all of them together hold more than the total, and spares one that keeps up", async () => {
    const bus = new EventBus(0, 10);
    const slow = [bus.subscribe(() => true, 100), bus.subscribe(() => true, 100)];
    const keepingUp = bus.subscribe(() => true, 100);
    const signal = new AbortController().signal;
    for (let sequence = 1; sequence <= 10; sequence++) {
      bus.publish([event(sequence)]);
      await keepingUp.take(signal);
    }
    assert.deepEqual(slow.map((subscription) => subscription.overflowReason), ["crowded", "crowded"]);
    assert.equal(keepingUp.overflowed.aborted, false);
    assert.ok(bus.backlogEvents <= 10);
  });
});

describe("connections", { timeout: 60_000 }, () => {
  it("closes connections to the gRPC and HTTP ports that send nothing within the handshake timeout, and not a client's", async (t) => {
    const { server, client } = await watchedServer(t, { httpListen: "127.0.0.1:0", handshakeTimeoutMs: 300 });
    const silent = [await rawConnection(server.port), await rawConnection(server.httpPort)];
    // A gRPC client's connection (it calls, then idles) and an HTTP client's (it asks, then idles) stay.
    await client.listNodes({ group: "g" });
    const keptAlive = await rawConnection(server.httpPort);
    keptAlive.write("GET /v1/groups/g/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    for (const socket of silent) assert.equal(await closedWithin(socket, 10_000), true, "a silent connection was closed");
    assert.equal(await closedWithin(keptAlive, 1_000), false, "an HTTP connection that asked is kept");
    keptAlive.destroy();
    await client.listNodes({ group: "g" });
  });

  it("closes a TLS connection that does not complete its handshake in time, and serves TLS clients", async (t) => {
    const dir = temporaryDataDir(t);
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
    const { server } = await watchedServer(t, { tls: { cert: readFileSync(cert), key: readFileSync(key) }, handshakeTimeoutMs: 300 });
    const silent = await rawConnection(server.port);
    const health = createClient(HealthDefinition, createChannel(`localhost:${server.port}`, ChannelCredentials.createSsl(readFileSync(cert))));
    assert.equal((await health.check({ service: "" })).status, 1, "a TLS client is served");
    assert.equal(await closedWithin(silent, 10_000), true);
  });

  it("closes a gRPC connection that starts HTTP/2 but makes no call for the idle timeout", async (t) => {
    const { server } = await watchedServer(t, { idleConnectionTimeoutMs: 300 });
    const socket = await rawConnection(server.port);
    socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    socket.resume();
    assert.equal(await closedWithin(socket, 10_000), true);
  });

  it("refuses connections beyond the limit on each port as they arrive, and serves again once some close", async (t) => {
    const { server, client, metricsPort } = await watchedServer(t, { httpListen: "127.0.0.1:0", maxConnections: 3 });
    for (const port of [server.port, server.httpPort]) {
      const held = await Promise.all([rawConnection(port), rawConnection(port), rawConnection(port)]);
      const extra = await rawConnection(port);
      assert.equal(await closedWithin(extra, 5_000), true, "the connection over the limit was closed");
      assert.equal(held.some((socket) => socket.destroyed), false);
      if (port === server.port) {
        await expectStatus(client.listNodes({ group: "g" }, { signal: AbortSignal.timeout(2_000) }), Status.UNAVAILABLE);
      } else {
        await assert.rejects(fetch(`http://127.0.0.1:${port}/v1/groups/g/nodes`));
      }
      held.forEach((socket) => socket.destroy());
    }
    await eventually(() => client.listNodes({ group: "g" }).then(() => true, () => undefined), "the gRPC port serves again");
    await eventually(async () => ((await fetch(`http://127.0.0.1:${server.httpPort}/v1/groups/g/nodes`).catch(() => undefined))?.status === 200 ? true : undefined), "the HTTP port serves again");
    assert.ok((await metric(metricsPort, "drover_connections_closed_total")) >= 2);
  });
});
