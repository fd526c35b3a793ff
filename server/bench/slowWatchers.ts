/**
 * Watchers that stop reading (issue 11, item 9), measured on the real server program:
 *
 *     node server/dist/bench/slowWatchers.js [watchers] [nodeEvents] [-- server flags…]
 *
 * Opens `watchers` WatchNodes streams (default 250) over raw HTTP/2 connections (ten
 * watchers each) that announce a zero flow-control window and never read, then scales a
 * group up and down with the simulated driver until the server has committed `nodeEvents`
 * node events (default 574,000). Prints the server's resident memory as it goes, and at the
 * end how many streams the server ended (it lets go of their subscriptions) and, once the
 * watchers finally read, with what status and message.
 */
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WatchNodesRequest } from "@drover/shared";
import { ServerProcess } from "./ServerProcess.js";

const GROUP = "slow";
const WATCHERS_PER_CONNECTION = 10;
const MB = 1024 * 1024;

interface Watcher {
  stream: http2.ClientHttp2Stream;
  bytes: number;
  status?: string;
  message?: string;
  closed: boolean;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A gRPC request on a raw HTTP/2 stream: one length-prefixed message, then the end of the request. */
function watchNodes(session: http2.ClientHttp2Session, token: string): Watcher {
  const message = WatchNodesRequest.encode({ group: GROUP }).finish();
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  const stream = session.request({
    ":method": "POST",
    ":path": "/drover.v1.DroverService/WatchNodes",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${token}`,
  });
  const watcher: Watcher = { stream, bytes: 0, closed: false };
  stream.on("trailers", (trailers) => {
    watcher.status = String(trailers["grpc-status"]);
    watcher.message = decodeURIComponent(String(trailers["grpc-message"] ?? ""));
  });
  stream.on("response", (headers) => {
    // A trailers-only response (an error before any message).
    if (headers["grpc-status"] !== undefined) {
      watcher.status = String(headers["grpc-status"]);
      watcher.message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
    }
  });
  stream.on("data", (chunk: Buffer) => (watcher.bytes += chunk.length));
  stream.on("close", () => (watcher.closed = true));
  stream.on("error", () => {});
  stream.pause();
  stream.end(frame);
  return watcher;
}

/** A metric's value, summed over its labels (0 when it has none yet). */
async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const lines = text.split("\n").filter((row) => row.startsWith(`${name} `) || row.startsWith(`${name}{`));
  return lines.reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

async function main(): Promise<void> {
  const separator = process.argv.indexOf("--");
  const positional = process.argv.slice(2, separator === -1 ? undefined : separator);
  const extraFlags = separator === -1 ? [] : process.argv.slice(separator + 1);
  const watcherCount = Number(positional[0] ?? 250);
  const targetEvents = Number(positional[1] ?? 574_000);
  const dataDir = mkdtempSync(join(tmpdir(), "drover-slow-watchers-"));
  const metricsPort = await freePort();
  const server = await ServerProcess.start({
    dataDir,
    args: ["--parallelism", "256", "--mock-latency", "0..1", "--metrics-listen", `127.0.0.1:${metricsPort}`, ...extraFlags],
  });
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    const client = server.client();
    await client.setSpec({ group: GROUP, count: 0, version: 1 });
    const subscribersBefore = await metric(metricsPort, "drover_event_subscribers");
    const watchers: Watcher[] = [];
    for (let n = 0; n < watcherCount; n++) {
      if (n % WATCHERS_PER_CONNECTION === 0) {
        const session = http2.connect(`http://${server.address}`, { settings: { initialWindowSize: 0 } });
        session.on("error", () => {});
        sessions.push(session);
      }
      watchers.push(watchNodes(sessions.at(-1)!, server.token));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const baseline = server.residentBytes();
    console.log(`server ${server.child.pid}: ${watcherCount} watchers open, none reading; RSS ${(baseline / MB).toFixed(0)} MB`);

    const db = server.openDatabase();
    const nodeEvents = db.prepare(`SELECT COUNT(*) FROM events WHERE type = 'node'`).pluck();
    let peak = baseline;
    const started = Date.now();
    let version = 1;
    for (let count = nodeEvents.get() as number; count < targetEvents; count = nodeEvents.get() as number) {
      version++;
      const scale = async (nodes: number) => {
        const graphId = (await client.setSpec({ group: GROUP, count: nodes, version })).graph?.id;
        while (graphId && (await client.getGraph({ graphId })).graph!.state <= 2) {
          peak = Math.max(peak, server.residentBytes());
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      await scale(2000);
      await scale(0);
      const rss = server.residentBytes();
      peak = Math.max(peak, rss);
      const subscribers = await metric(metricsPort, "drover_event_subscribers");
      console.log(
        `${Math.round((Date.now() - started) / 1000)}s: ${nodeEvents.get()} node events, RSS ${(rss / MB).toFixed(0)} MB, ` +
          `open subscriptions ${subscribers - subscribersBefore} of ${watcherCount}`,
      );
    }
    db.close();
    const endRss = server.residentBytes();
    const dropped = await metric(metricsPort, "drover_watchers_dropped_total");
    const subscribers = (await metric(metricsPort, "drover_event_subscribers")) - subscribersBefore;
    console.log(
      `after ${Math.round((Date.now() - started) / 1000)}s: RSS ${(baseline / MB).toFixed(0)} → peak ${(peak / MB).toFixed(0)} → end ${(endRss / MB).toFixed(0)} MB; ` +
        `watchers dropped (metric) ${dropped}; watch subscriptions still open ${subscribers}`,
    );

    // Now read: open every window and take what the server still has for each stream.
    for (const session of sessions) session.settings({ initialWindowSize: 1 << 20 });
    for (const watcher of watchers) watcher.stream.resume();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const byStatus = new Map<string, number>();
    for (const watcher of watchers) {
      const key = watcher.status === undefined ? (watcher.closed ? "closed without status" : "still open") : `grpc-status ${watcher.status}`;
      byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
    }
    console.log(`after reading: ${[...byStatus].map(([key, n]) => `${n} ${key}`).join(", ")}`);
    const example = watchers.find((watcher) => watcher.message);
    if (example) console.log(`for example: ${example.message} (after ${example.bytes} bytes)`);
  } finally {
    for (const session of sessions) session.destroy();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
