import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { get as httpGet, type IncomingMessage } from "node:http";
import http2 from "node:http2";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { GraphState, isSettled, WatchNodesRequest, WatchNodesResponse } from "@drover/shared";
import { ChannelCredentials, createChannel, createClient, Status } from "nice-grpc";
import { HealthDefinition } from "nice-grpc-server-health";
import type { DroverServerOptions } from "../src/DroverServer.js";
import { EventBus } from "../src/events/EventBus.js";
import type { Event } from "../src/domain.js";
import { freePort } from "./processes.js";
import { drain, eventually, expectStatus, startTestServer, temporaryDataDir } from "./support.js";

const MB = 1024 * 1024;

/**
 * A gRPC WatchNodes call on a raw HTTP/2 session, for a client no gRPC library can play: one
 * that announces a zero flow-control window and never reads, until told to.
 */
class RawWatch {
  readonly messages: Buffer[] = [];
  status: string | undefined;
  message = "";
  private pending = Buffer.alloc(0);
  readonly closed: Promise<number>;

  constructor(session: http2.ClientHttp2Session, group: string) {
    const request = WatchNodesRequest.encode({ group }).finish();
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    frame.set(request, 5);
    const stream = session.request({ ":method": "POST", ":path": "/drover.v1.DroverService/WatchNodes", "content-type": "application/grpc", te: "trailers" });
    stream.on("response", (headers) => this.readStatus(headers));
    stream.on("trailers", (trailers) => this.readStatus(trailers));
    stream.on("data", (chunk: Buffer) => this.readMessages(chunk));
    stream.on("error", () => {});
    this.closed = new Promise((resolve) => stream.on("close", () => resolve(stream.rstCode ?? 0)));
    stream.pause();
    stream.end(frame);
    this.stream = stream;
  }

  private readonly stream: http2.ClientHttp2Stream;

  /** Starts reading: what the server holds for this stream, then its status. */
  read(): void {
    this.stream.resume();
  }

  /** The sequence of the last event (or of the snapshot) the client was sent. */
  get lastSequence(): number {
    let last = 0;
    for (const bytes of this.messages) {
      const message = WatchNodesResponse.decode(bytes);
      last = message.events.at(-1)?.sequence ?? Math.max(last, message.sequence);
    }
    return last;
  }

  private readStatus(headers: http2.IncomingHttpHeaders): void {
    if (headers["grpc-status"] === undefined) return;
    this.status = String(headers["grpc-status"]);
    this.message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
  }

  private readMessages(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 5 && this.pending.length >= 5 + this.pending.readUInt32BE(1)) {
      const length = this.pending.readUInt32BE(1);
      this.messages.push(this.pending.subarray(5, 5 + length));
      this.pending = this.pending.subarray(5 + length);
    }
  }
}

/** An HTTP/2 connection that announces a zero flow-control window: the server can send it no data until it opens it. */
function deafSession(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
  session.on("error", () => {});
  return session;
}

/** Opens every stream's window: from now on the client reads. */
function listen(session: http2.ClientHttp2Session): void {
  session.settings({ initialWindowSize: 1 << 20 });
}

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

/** Scales a group to `count` and waits until its graph settles (polling: a watch of it would be one more watcher). */
async function scale(client: Awaited<ReturnType<typeof startTestServer>>["client"], group: string, count: number, version: number) {
  const { graph } = await client.setSpec({ group, count, version });
  if (!graph) return;
  await eventually(async () => {
    const { state } = (await client.getGraph({ graphId: graph.id })).graph!;
    return state === GraphState.GRAPH_STATE_SUCCEEDED ? true : undefined;
  }, `the graph to ${count} nodes succeeding`, 60_000);
}

/** A stream's first message; the stream is then cancelled. */
async function firstMessage<T>(stream: AsyncIterable<T>): Promise<T> {
  for await (const message of stream) return message;
  throw new Error("the stream ended without a message");
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

describe("watchers that stop reading", { timeout: 180_000 }, () => {
  it("ends a gRPC watch that never reads the moment it falls its buffer behind, with RESOURCE_EXHAUSTED and the sequence to resume after", async (t) => {
    const { server, client, subscriptions, idle } = await watchedServer(t, { watcherCapacity: 300 });
    const session = deafSession(server.port);
    t.after(() => session.destroy());
    const watch = new RawWatch(session, "deaf");
    await eventually(async () => ((await subscriptions()) === idle + 1 ? true : undefined), "the watch subscribed");

    await scale(client, "deaf", 200, 1);
    // Ended while its client still reads nothing: its subscription is gone.
    await eventually(async () => ((await subscriptions()) === idle ? true : undefined), "the watch let go of its subscription");

    listen(session);
    watch.read();
    await watch.closed;
    assert.equal(watch.status, String(Status.RESOURCE_EXHAUSTED), watch.message);
    const resumeAfter = Number(/fell more than 300 events behind: resume after sequence (\d+)$/.exec(watch.message)?.[1]);
    assert.equal(resumeAfter, watch.lastSequence, "the resume point is the last event the client was sent");

    // Resuming there misses nothing: it starts with the first event after it in the log.
    const log = await firstMessage(client.watchNodes({ group: "deaf", afterSequence: 0 }));
    const resumed = await firstMessage(client.watchNodes({ group: "deaf", afterSequence: resumeAfter }));
    assert.equal(resumed.events[0]!.sequence, log.events.find((event) => event.sequence > resumeAfter)!.sequence);
  });

  it("resets a gRPC stream whose client reads nothing for the drain timeout, which gRPC clients see as RESOURCE_EXHAUSTED, and lets go of it", async (t) => {
    const { server, subscriptions, idle } = await watchedServer(t, { watcherDrainTimeoutMs: 500 });
    const session = deafSession(server.port);
    t.after(() => session.destroy());
    // Its first message (the snapshot) is sent, and never read.
    const watch = new RawWatch(session, "stalled");
    assert.equal(await watch.closed, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await eventually(async () => ((await subscriptions()) === idle ? true : undefined), "the watch let go of its subscription");
  });

  it("keeps a server's memory bounded while 250 watchers never read, and ends each with where to resume", async (t) => {
    const { server, client, subscriptions, idle, metricsPort } = await watchedServer(t, {
      watcherCapacity: 2_000,
      // Long enough that every stream is ended by falling behind, not reset for stalling.
      watcherDrainTimeoutMs: 600_000,
    });
    const sessions = Array.from({ length: 25 }, () => deafSession(server.port));
    t.after(() => sessions.forEach((session) => session.destroy()));
    const watches = Array.from({ length: 250 }, (_, n) => new RawWatch(sessions[n % 25]!, "many"));
    await eventually(async () => ((await subscriptions()) === idle + 250 ? true : undefined), "every watch subscribed");
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    // About 40,000 node events: each watcher falls its 2,000 behind many times over.
    for (let version = 1; version <= 10; version++) {
      await scale(client, "many", 1_000, version);
      await scale(client, "many", 0, version);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    assert.equal(await subscriptions(), idle, "every watch let go of its subscription");
    assert.equal(await metric(metricsPort, "drover_watchers_dropped_total"), 250);
    t.diagnostic(`resident memory: ${Math.round(before / MB)} MB with every watch open, ${Math.round(peak / MB)} MB at most after`);
    assert.ok(peak - before < 300 * MB, `the process grew by ${Math.round((peak - before) / MB)} MB`);

    sessions.forEach(listen);
    watches.forEach((watch) => watch.read());
    await Promise.all(watches.map((watch) => watch.closed));
    for (const watch of watches) {
      assert.equal(watch.status, String(Status.RESOURCE_EXHAUSTED), watch.message);
      assert.match(watch.message, new RegExp(`resume after sequence ${watch.lastSequence}$`));
    }
  });

  it("ends the watchers furthest behind when all of them together hold more than the server allows, and not one that reads", async (t) => {
    const { server, client, subscriptions, idle } = await watchedServer(t, { watcherCapacity: 100_000, watcherTotalCapacity: 4_000 });
    const session = deafSession(server.port);
    t.after(() => session.destroy());
    const deaf = Array.from({ length: 4 }, () => new RawWatch(session, "crowd"));
    const stopReading = new AbortController();
    const read: number[] = [];
    const reading = (async () => {
      for await (const message of client.watchNodes({ group: "crowd" }, { signal: stopReading.signal })) read.push(...message.events.map((event) => event.sequence));
    })().catch(() => {});
    await eventually(async () => ((await subscriptions()) === idle + 5 ? true : undefined), "every watch subscribed");

    // About 8,000 node events: twice what all of them may hold together.
    await scale(client, "crowd", 1_000, 1);
    await scale(client, "crowd", 0, 2);
    await eventually(async () => ((await subscriptions()) === idle + 1 ? true : undefined), "the four that do not read were ended");
    listen(session);
    for (const watch of deaf) watch.read();
    for (const watch of deaf) {
      await watch.closed;
      assert.equal(watch.status, String(Status.RESOURCE_EXHAUSTED));
      assert.match(watch.message, /furthest behind .*--watcher-buffer-total.*: resume after sequence \d+$/);
    }
    const log = (await firstMessage(client.watchNodes({ group: "crowd", afterSequence: 0 }))).events.map((event) => event.sequence);
    await eventually(async () => (read.length >= log.length ? true : undefined), "the reader read every event");
    assert.deepEqual(read, log, "the reader got every event, once, in order");
    stopReading.abort();
    await reading;
  });

  it("ends an HTTP watch that stops reading in a large snapshot once it falls behind, its last line saying where to resume", async (t) => {
    const { server, client, subscriptions, idle } = await watchedServer(t, { httpListen: "127.0.0.1:0", watcherCapacity: 300 });
    // A graph whose snapshot is far more than the sockets' buffers hold.
    const { graph } = await client.setSpec({ group: "big", count: 40_000, version: 1 });
    const graphId = graph!.id;
    await client.pauseGraph({ graphId });
    const response = await new Promise<IncomingMessage>((resolve, reject) =>
      httpGet(`http://127.0.0.1:${server.httpPort}/v1/graphs/${graphId}/events`, { headers: { accept: "application/x-ndjson" } }, resolve).on("error", reject),
    );
    t.after(() => response.destroy());
    response.pause();
    await eventually(async () => ((await subscriptions()) === idle + 1 ? true : undefined), "the watch subscribed");
    await client.resumeGraph({ graphId });
    await eventually(async () => ((await subscriptions()) === idle ? true : undefined), "the watch let go of its subscription");
    await client.cancelGraph({ graphId });

    let text = "";
    response.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
    response.resume();
    await once(response, "end");
    const lines = text.trim().split("\n").map((line) => JSON.parse(line) as Record<string, any>);
    assert.equal(lines[0]!.snapshot.tasks.length, 40_001);
    const last = lines.at(-1)!;
    assert.equal(last.error.code, "RESOURCE_EXHAUSTED");
    const resumeAfter = Number(/fell more than 300 events behind: resume after sequence (\d+)$/.exec(last.error.message)?.[1]);
    assert.equal(resumeAfter, Math.max(Number(lines[0]!.snapshot.sequence), ...lines.filter((line) => line.event).map((line) => Number(line.event.sequence))));
  });

  it("cuts an HTTP stream whose client reads nothing for the drain timeout", async (t) => {
    const { server, client, subscriptions, idle, metricsPort } = await watchedServer(t, {
      httpListen: "127.0.0.1:0",
      watcherDrainTimeoutMs: 500,
      // Falling behind would end it first.
      watcherCapacity: 1_000_000,
    });
    // A node watch, which never ends by itself: a graph's stream that fit in the sockets' buffers
    // (loopback's receive buffer may grow to 32 MB) ended with its graph, and nothing was cut.
    await client.setSpec({ group: "big", count: 0, version: 1 });
    const socket = await rawConnection(server.httpPort);
    t.after(() => socket.destroy());
    socket.pause();
    socket.write(`GET /v1/groups/big/nodes/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await eventually(async () => ((await subscriptions()) === idle + 1 ? true : undefined), "the watch subscribed");
    // Node events until the sockets are full and the stream is cut: 20,000 nodes up and down
    // (80,000 events, about 20 MB) at a time, for as long as it takes.
    const dropped = () => metric(metricsPort, "drover_watchers_dropped_total");
    const deadline = Date.now() + 120_000; // a hang bound
    for (let round = 0; (await dropped()) === 0; round++) {
      assert.ok(Date.now() < deadline, `the stream was not cut after ${round} rounds of 80,000 node events`);
      for (const count of [20_000, 0]) {
        const { graph } = await client.setSpec({ group: "big", count, version: 1 });
        await eventually(async () => ((await dropped()) > 0 || isSettled((await client.getGraph({ graphId: graph!.id })).graph!.state) ? true : undefined), "a scale settled", 120_000);
      }
    }
    // At least one drop, and then exactly one: a stream that falls behind the total buffer as it
    // stalls is ended for that first (reason "behind"), which ends it just as well.
    const stalled = await metric(metricsPort, 'drover_watchers_dropped_total{reason="stalled"}');
    const behind = await metric(metricsPort, 'drover_watchers_dropped_total{reason="behind"}');
    assert.equal(stalled + behind, 1, `one stream, ended once: stalled ${stalled}, behind ${behind}`);
    await eventually(async () => ((await subscriptions()) === idle ? true : undefined), "the watch let go of its subscription");
    // What reached the client's socket before the cut, and then the end.
    socket.resume();
    assert.equal(await closedWithin(socket, 10_000), true, "the connection is closed");
  });
});

describe("connections", { timeout: 60_000 }, () => {
  it("refuses one more watch than a connection may hold, saying so, and lets it in once another ends", async (t) => {
    const { client } = await watchedServer(t, { maxWatchersPerConnection: 2 });
    const first = client.watchNodes({ group: "g" })[Symbol.asyncIterator]();
    const second = client.watchNodes({ group: "g" })[Symbol.asyncIterator]();
    await Promise.all([first.next(), second.next()]);
    await expectStatus(
      drain(client.watchNodes({ group: "g" })),
      Status.RESOURCE_EXHAUSTED,
      /this connection already has 2 watch streams open, the server's limit \(--max-watchers-per-connection\)/,
    );
    assert.ok(await client.listGroups({}), "calls that do not stream are not counted");
    await first.return?.();
    await eventually(async () => {
      const third = client.watchNodes({ group: "g" })[Symbol.asyncIterator]();
      const answer = await third.next().then(() => true, () => undefined);
      await third.return?.().catch(() => {});
      return answer;
    }, "a watch is let in again");
    await second.return?.();
  });

  it("closes connections to the gRPC and HTTP ports that send nothing within the handshake timeout, and not a client's", async (t) => {
    const { server, client } = await watchedServer(t, { httpListen: "127.0.0.1:0", handshakeTimeoutMs: 300 });
    const silent = [await rawConnection(server.port), await rawConnection(server.httpPort)];
    // A gRPC client's connection (it calls, then idles) and an HTTP client's (it asks, then idles) stay.
    await client.listGroups({});
    const keptAlive = await rawConnection(server.httpPort);
    keptAlive.write("GET /v1/groups HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    for (const socket of silent) assert.equal(await closedWithin(socket, 10_000), true, "a silent connection was closed");
    assert.equal(await closedWithin(keptAlive, 1_000), false, "an HTTP connection that asked is kept");
    keptAlive.destroy();
    await client.listGroups({});
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
        await expectStatus(client.listGroups({}, { signal: AbortSignal.timeout(2_000) }), Status.UNAVAILABLE);
      } else {
        await assert.rejects(fetch(`http://127.0.0.1:${port}/v1/groups`));
      }
      held.forEach((socket) => socket.destroy());
    }
    await eventually(() => client.listGroups({}).then(() => true, () => undefined), "the gRPC port serves again");
    await eventually(async () => ((await fetch(`http://127.0.0.1:${server.httpPort}/v1/groups`).catch(() => undefined))?.status === 200 ? true : undefined), "the HTTP port serves again");
    assert.ok((await metric(metricsPort, "drover_connections_closed_total")) >= 2);
  });
});
