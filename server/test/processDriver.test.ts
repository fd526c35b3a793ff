import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type DroverServiceClient,
  type Event,
  type Graph,
  GraphReason,
  GraphState,
  HealthCheckType,
  type Node,
  NodeState,
  TaskAction,
} from "@drover/shared";
import { Status } from "nice-grpc";
import { CHAT_EXAMPLE } from "../src/templates.js";
import { type Exited, freePort, freePortWindow, readNodeLog, startServer, waitUntilServing } from "./processes.js";
import { drain, eventually, expectStatus } from "./support.js";

/**
 * The process driver end to end: the real server program (`bin/server --driver process`)
 * runs real node processes — the chat example, or small inline scripts — and the tests
 * look at them from outside: their ports, /healthz, the node records under the data dir,
 * and /proc.
 */

const portsOf = (range: { first: number; last: number }) => Array.from({ length: range.last - range.first + 1 }, (_, i) => range.first + i);

// ---------------------------------------------------------------- processes

/** What /proc/<pid>/stat says of a process: its state (Z: zombie) and start time (clock ticks since boot). */
function procStat(pid: number): { state: string; startTime: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0]!, startTime: Number(fields[19]) };
}

interface NodeProcess {
  pid: number;
  nodeId: string;
  group: string;
  peersFile: string;
}

/** Every process that is not a zombie and has DROVER_NODE_ID in its environment. */
function nodeProcesses(): NodeProcess[] {
  const found: NodeProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "utf8");
    } catch {
      continue;
    }
    const env = new Map(
      environ
        .split("\0")
        .filter((pair) => pair.includes("="))
        .map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)] as const),
    );
    const nodeId = env.get("DROVER_NODE_ID");
    if (nodeId === undefined) continue;
    const stat = procStat(Number(entry));
    if (!stat || stat.state === "Z") continue;
    found.push({ pid: Number(entry), nodeId, group: env.get("DROVER_GROUP") ?? "", peersFile: env.get("DROVER_PEERS_FILE") ?? "" });
  }
  return found;
}

/** The live node processes a server on `dataDir` started (their peers file is under it). */
function processesUnder(dataDir: string): NodeProcess[] {
  return nodeProcesses().filter((found) => found.peersFile.startsWith(join(dataDir, "/")));
}

function killHard(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // Already gone, or not a process group leader.
    }
  }
}

/** The driver's record of a node: `<data dir>/nodes/<id>.json`. */
interface NodeRecord {
  id: string;
  group: string;
  port: number;
  pid?: number;
  startTime?: number;
}

function readRecord(dataDir: string, nodeId: string): NodeRecord {
  return JSON.parse(readFileSync(join(dataDir, "nodes", `${nodeId}.json`), "utf8")) as NodeRecord;
}

function recordFiles(dataDir: string): string[] {
  const dir = join(dataDir, "nodes");
  return existsSync(dir) ? readdirSync(dir).filter((file) => file.endsWith(".json")) : [];
}

// ---------------------------------------------------------------- HTTP

/** One HTTP request on a fresh connection (no keep-alive, so a replaced node's socket is never reused); undefined when it fails. */
function fetchOnce(
  port: number,
  path: string,
  options: { method?: string; body?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, method: options.method ?? "GET", agent: false, headers: options.body ? { "content-type": "application/json" } : {} },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", () => resolve(undefined));
      },
    );
    req.setTimeout(options.timeoutMs ?? 1000, () => req.destroy(new Error("timed out")));
    req.on("error", () => resolve(undefined));
    req.end(options.body);
  });
}

interface Healthz {
  status: string;
  node: string;
  version: string;
  group: string | null;
  peers: number;
  clients: number;
}

async function healthz(port: number): Promise<Healthz | undefined> {
  const answer = await fetchOnce(port, "/healthz");
  return answer?.status === 200 ? (JSON.parse(answer.body) as Healthz) : undefined;
}

interface ChatMessage {
  id: string;
  origin: string;
  author: string;
  text: string;
  time: string;
}

/** A chat node's /events stream, read into `messages` (its `data:` lines), open once it has sent its first byte. */
async function subscribe(port: number): Promise<{ messages: ChatMessage[]; close: () => void }> {
  const messages: ChatMessage[] = [];
  const req = httpRequest({ host: "127.0.0.1", port, path: "/events", agent: false });
  await new Promise<void>((resolve, reject) => {
    req.on("error", reject);
    req.on("response", (res) => {
      assert.equal(res.statusCode, 200);
      let buffer = "";
      res.setEncoding("utf8");
      res.once("data", () => resolve());
      res.on("data", (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split("\n");
        buffer = lines.pop()!;
        for (const line of lines) if (line.startsWith("data: ")) messages.push(JSON.parse(line.slice(6)) as ChatMessage);
      });
      res.on("error", () => {});
    });
    req.end();
  });
  return { messages, close: () => req.destroy() };
}

// ---------------------------------------------------------------- servers

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The `after` hooks clean up; this covers a test process killed outright (SIGKILL, a
 * runner's timeout), which would leave servers and their detached nodes running. A
 * watchdog in its own session reads data dirs from its stdin; when the stdin closes (this
 * process ended, however) it SIGKILLs every server whose command line names one of the
 * dirs and every node process whose peers file is under one, and removes the dirs.
 */
const WATCHDOG = String.raw`
const fs = require("node:fs");
const dirs = [];
let pending = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  pending += chunk;
  const lines = pending.split("\n");
  pending = lines.pop();
  dirs.push(...lines.filter(Boolean));
});
process.stdin.on("close", () => {
  const read = (pid, file) => { try { return fs.readFileSync("/proc/" + pid + "/" + file, "utf8"); } catch { return ""; } };
  const kill = (pid) => { for (const target of [-pid, pid]) { try { process.kill(target, "SIGKILL"); } catch {} } };
  for (let round = 0; round < 2; round++) {
    for (const entry of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      const cmdline = read(entry, "cmdline");
      const environ = read(entry, "environ");
      const ours = dirs.some((dir) =>
        cmdline.includes("--data-dir\0" + dir + "\0") || environ.includes("\0DROVER_PEERS_FILE=" + dir + "/"));
      if (ours) kill(Number(entry));
    }
  }
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});
`;
let watchdog: ChildProcess | undefined;

/** Hands a data dir to the watchdog (started on first use). */
function guard(dataDir: string): void {
  if (!watchdog) {
    watchdog = spawn(process.execPath, ["-e", WATCHDOG], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
    watchdog.unref();
    (watchdog.stdin as unknown as { unref(): void }).unref();
  }
  watchdog.stdin!.write(`${dataDir}\n`);
}

/**
 * The server program with the process driver on a fresh data dir and its own port window.
 * `cleanup` SIGKILLs it and every node process it started (found by their peers file,
 * which is under the data dir), and removes the data dir.
 */
class ProcessServer {
  readonly dataDir = mkdtempSync(join(tmpdir(), "drover-process-"));
  client!: DroverServiceClient;
  private running?: { child: ReturnType<typeof startServer>["child"]; exited: Promise<Exited> };
  private args: string[] = [];

  constructor(
    readonly ports: { first: number; last: number },
    private readonly extraFlags: string[] = [],
  ) {
    guard(this.dataDir);
  }

  async start(): Promise<void> {
    if (this.args.length === 0) {
      const grpcPort = await freePort();
      this.args = [
        "--driver", "process",
        "--port-range", `${this.ports.first}..${this.ports.last}`,
        "--data-dir", this.dataDir,
        "--listen", `127.0.0.1:${grpcPort}`,
        "--log-level", "warn",
        // Short, so rollouts of several nodes fit the tests' deadlines; the default (10s) is tested on its own.
        "--min-ready", "500ms",
        ...this.extraFlags,
      ];
    }
    this.running = startServer(this.args);
    const port = Number(this.args[this.args.indexOf("--listen") + 1]!.split(":")[1]);
    this.client = await Promise.race([
      waitUntilServing(port, this.dataDir),
      this.running.exited.then((exited) => {
        throw new Error(`the server exited (${exited.code ?? exited.signal}): ${exited.stderr.trim()}`);
      }),
    ]);
  }

  /** SIGKILL, as a crash: the node processes live on. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.running.child.kill("SIGKILL");
    await this.running.exited;
    this.running = undefined;
  }

  async cleanup(): Promise<void> {
    await this.kill();
    // Twice: a node being started as the server died could appear between two scans.
    for (let round = 0; round < 2; round++) {
      for (const found of processesUnder(this.dataDir)) killHard(found.pid);
      await sleep(50);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Every node id of the group so far, stopped ones too. */
  async nodeIds(group: string): Promise<string[]> {
    return (await this.client.listNodes({ group, all: true })).nodes.map((node) => node.id);
  }
}

/** Sets the spec and waits for its graph to settle; returns the settled graph. */
async function update(client: DroverServiceClient, spec: { group: string; count: number; version: number }): Promise<Graph> {
  const response = await client.setSpec(spec, { signal: AbortSignal.timeout(10_000) });
  assert.ok(response.graph?.id, `SetSpec ${JSON.stringify(spec)} made a graph`);
  return settled(client, response.graph.id);
}

async function settled(client: DroverServiceClient, graphId: string): Promise<Graph> {
  await drain(client.watchGraph({ graphId }, { signal: AbortSignal.timeout(30_000) }));
  return (await client.getGraph({ graphId })).graph!;
}

function assertSucceeded(graph: Graph): void {
  assert.equal(GraphState[graph.state], GraphState[GraphState.GRAPH_STATE_SUCCEEDED], `graph ${graph.id} failed: ${graph.error}`);
}

function assertFailed(graph: Graph, error: RegExp): void {
  assert.equal(GraphState[graph.state], GraphState[GraphState.GRAPH_STATE_FAILED], `graph ${graph.id} should fail`);
  assert.match(graph.error, error);
}

async function liveNodes(client: DroverServiceClient, group: string): Promise<Node[]> {
  return (await client.listNodes({ group })).nodes;
}

/**
 * The group is consistent with the processes: every live row that should have a process
 * (running, unhealthy, starting, stopping) has exactly one, a failed row has none, and
 * no process of the group runs without a row that should have it.
 */
async function assertConsistent(server: ProcessServer, group: string): Promise<void> {
  const nodes = await liveNodes(server.client, group);
  const processes = processesUnder(server.dataDir).filter((found) => found.group === group);
  const withProcess = nodes.filter((node) => node.state !== NodeState.NODE_STATE_FAILED).map((node) => node.id);
  assert.deepEqual(
    processes.map((found) => found.nodeId).sort(),
    withProcess.sort(),
    `group ${group}: the node processes are exactly the live rows (${nodes.map((node) => `${node.id} ${NodeState[node.state]}`).join(", ")})`,
  );
}

// ---------------------------------------------------------------- tests

describe("the process driver", { timeout: 120_000 }, () => {
  describe("running the chat example", () => {
    const group = "chat";
    let server: ProcessServer;
    /** Every node id the group has had, to look for leftover processes at the end. */
    const seen = new Set<string>();

    before(async () => {
      server = new ProcessServer(await freePortWindow(10));
      await server.start();
    });
    after(async () => {
      await server?.cleanup();
    });

    /** The live nodes, each with its record; checks they are all running. */
    async function runningNodes(count: number) {
      const nodes = await liveNodes(server.client, group);
      assert.deepEqual(
        nodes.map((node) => NodeState[node.state]),
        Array.from({ length: count }, () => NodeState[NodeState.NODE_STATE_RUNNING]),
      );
      for (const node of nodes) seen.add(node.id);
      return nodes.map((node) => ({ node, record: readRecord(server.dataDir, node.id) }));
    }

    it("starts three chat processes on distinct ports that peer with one another and relay messages", async () => {
      assertSucceeded(await update(server.client, { group, count: 3, version: 1 }));
      const nodes = await runningNodes(3);
      const ports = nodes.map(({ record }) => record.port);
      assert.equal(new Set(ports).size, 3, `distinct ports: ${ports}`);
      for (const { node, record } of nodes) {
        assert.ok(record.port >= server.ports.first && record.port <= server.ports.last, `port ${record.port} is in the range`);
        const owner = nodeProcesses().find((found) => found.pid === record.pid);
        assert.equal(owner?.nodeId, node.id, `pid ${record.pid} is node ${node.id}'s live process`);
      }
      await eventually(
        async () => {
          const answers = await Promise.all(nodes.map(({ record }) => healthz(record.port)));
          return answers.every((answer, i) => answer?.node === nodes[i]!.node.id && answer.version === "1" && answer.peers === 2)
            ? true
            : undefined;
        },
        "every node answers /healthz with version 1 and 2 connected peers",
        10_000,
      );

      const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
      const stream = await subscribe(b.record.port);
      try {
        const text = `hello from the test ${Date.now()}`;
        const posted = await fetchOnce(a.record.port, "/messages", { method: "POST", body: JSON.stringify({ author: "test", text }) });
        assert.equal(posted?.status, 202, posted?.body);
        const message = await eventually(
          async () => stream.messages.find((candidate) => candidate.text === text),
          "the message posted to node A arrives on node B's /events",
          5000,
        );
        assert.equal(message.origin, a.node.id);
        assert.equal(message.author, "test");
        assert.equal(message.id, (JSON.parse(posted.body) as { id: string }).id);
      } finally {
        stream.close();
      }
    });

    it("rolls the group to version 2 with never fewer than two nodes answering", async (t) => {
      const allPorts = portsOf(server.ports);
      /** Per poll, the versions of the nodes that answered 200, in port order: "1 1 2". */
      const samples: string[][] = [];
      let rolling = true;
      const poller = (async () => {
        while (rolling) {
          const answers = await Promise.all(allPorts.map((port) => healthz(port)));
          samples.push(answers.filter((answer) => answer !== undefined).map((answer) => answer!.version));
          await sleep(50);
        }
      })();
      let graph: Graph;
      try {
        graph = await update(server.client, { group, count: 3, version: 2 });
      } finally {
        rolling = false;
        await poller;
      }
      assertSucceeded(graph);
      const shown = samples.map((versions) => `[${versions.join(" ")}]`).join(" ");
      t.diagnostic(`versions answering per poll: ${shown}`);
      assert.ok(samples.length >= 3, `polled during the rollout (${samples.length} polls)`);
      assert.ok(
        samples.every((versions) => versions.length >= 2),
        `answering nodes per poll never dropped below count − max_unavailable = 2: ${shown}`,
      );

      const nodes = await runningNodes(3);
      const answers = await Promise.all(nodes.map(({ record }) => healthz(record.port)));
      assert.deepEqual(
        answers.map((answer) => answer?.version),
        ["2", "2", "2"],
      );
      const answering = await Promise.all(allPorts.map((port) => fetchOnce(port, "/healthz")));
      assert.equal(answering.filter((answer) => answer?.status === 200).length, 3, "the old processes are gone");
    });

    it("heals a node whose process is SIGKILLed with a repair graph", async () => {
      const before = await runningNodes(3);
      const knownGraphs = new Set((await server.client.listGraphs({ group })).graphs.map((graph) => graph.id));
      const victim = before[0]!;
      assert.equal(nodeProcesses().find((found) => found.pid === victim.record.pid)?.nodeId, victim.node.id);
      process.kill(victim.record.pid!, "SIGKILL");

      const repair = await eventually(
        async () => (await server.client.listGraphs({ group })).graphs.find((graph) => !knownGraphs.has(graph.id)),
        "a new graph is made",
        20_000,
      );
      assert.equal(GraphReason[repair.reason], GraphReason[GraphReason.GRAPH_REASON_REPAIR]);
      const done = await settled(server.client, repair.id);
      assertSucceeded(done);
      assert.ok(
        done.tasks.some((task) => task.action === TaskAction.TASK_ACTION_SHUT_DOWN_NODE && task.nodeId === victim.node.id),
        "the repair graph shuts down the dead node",
      );
      assert.ok(done.tasks.some((task) => task.action === TaskAction.TASK_ACTION_START_NODE), "and starts a replacement");

      await eventually(
        async () => {
          const nodes = await liveNodes(server.client, group);
          if (nodes.length !== 3 || nodes.some((node) => node.state !== NodeState.NODE_STATE_RUNNING)) return undefined;
          const answers = await Promise.all(nodes.map((node) => healthz(readRecord(server.dataDir, node.id).port)));
          return answers.every((answer, i) => answer?.node === nodes[i]!.id && answer.version === "2") ? true : undefined;
        },
        "the group is back at three healthy nodes",
        20_000,
      );
      const after = await runningNodes(3);
      assert.ok(!after.some(({ node }) => node.id === victim.node.id), "the killed node is not among the live ones");
    });

    it("re-adopts the live processes after the server is SIGKILLed and restarted, without restarting them", async () => {
      const before = await runningNodes(3);
      const graphsBefore = (await server.client.listGraphs({ group, limit: 1000 })).graphs.map((graph) => [graph.id, graph.state]);
      const identities = before.map(({ node, record }) => {
        const stat = procStat(record.pid!);
        assert.ok(stat && stat.state !== "Z", `node ${node.id}'s process ${record.pid} is alive`);
        assert.equal(stat.startTime, record.startTime, "the record's start time is the process's");
        return { id: node.id, pid: record.pid!, startTime: stat.startTime, port: record.port };
      });

      await server.kill();
      for (const { id, pid, startTime } of identities) {
        assert.equal(procStat(pid)?.startTime, startTime, `node ${id} outlives the server`);
      }
      await server.start();
      // A health-check interval (1 s) and the start-up reconcile pass, for a mistaken "gone" to show.
      await sleep(1500);

      const after = await runningNodes(3);
      assert.deepEqual(
        after.map(({ node, record }) => ({ id: node.id, pid: record.pid, startTime: record.startTime, port: record.port })),
        identities,
        "the same nodes, with the same processes",
      );
      for (const { id, pid, startTime, port } of identities) {
        const stat = procStat(pid);
        assert.ok(stat && stat.state !== "Z" && stat.startTime === startTime, `node ${id}'s process ${pid} was not restarted`);
        assert.equal((await healthz(port))?.node, id, `node ${id} still answers on port ${port}`);
      }
      const graphsAfter = (await server.client.listGraphs({ group, limit: 1000 })).graphs.map((graph) => [graph.id, graph.state]);
      assert.deepEqual(graphsAfter, graphsBefore, "the restart made no graph");
    });

    it("repairs, after a restart, a node whose process died while the server was down", async () => {
      const before = await runningNodes(3);
      const knownGraphs = new Set((await server.client.listGraphs({ group, limit: 1000 })).graphs.map((graph) => graph.id));
      await server.kill();
      const victim = before[2]!;
      process.kill(victim.record.pid!, "SIGKILL");
      await eventually(
        async () => (procStat(victim.record.pid!)?.state ?? "Z") === "Z" || undefined,
        "the killed process is gone (or a zombie)",
        5000,
      );
      await server.start();

      const repair = await eventually(
        async () => (await server.client.listGraphs({ group, limit: 1000 })).graphs.find((graph) => !knownGraphs.has(graph.id)),
        "a repair graph is made",
        20_000,
      );
      assert.equal(GraphReason[repair.reason], GraphReason[GraphReason.GRAPH_REASON_REPAIR]);
      assertSucceeded(await settled(server.client, repair.id));
      const after = await runningNodes(3);
      assert.ok(!after.some(({ node }) => node.id === victim.node.id), "the dead node was replaced");
      for (const { node, record } of before.slice(0, 2)) {
        assert.equal(after.find((candidate) => candidate.node.id === node.id)?.record.pid, record.pid, `node ${node.id} kept its process`);
      }
      const dead = (await server.client.listNodes({ group, all: true })).nodes.find((node) => node.id === victim.node.id);
      assert.equal(NodeState[dead!.state], NodeState[NodeState.NODE_STATE_STOPPED]);
    });

    it("scales to zero and leaves no node process behind", async () => {
      for (const id of await server.nodeIds(group)) seen.add(id);
      assertSucceeded(await update(server.client, { group, count: 0, version: 2 }));
      assert.deepEqual(await liveNodes(server.client, group), []);
      const leftovers = nodeProcesses().filter((found) => seen.has(found.nodeId));
      assert.deepEqual(leftovers, [], `no process of the ${seen.size} nodes the group had is left`);
      assert.deepEqual(processesUnder(server.dataDir), []);
      assert.deepEqual(recordFiles(server.dataDir), [], "no node record is left");
    });
  });

  describe("templates, health checks and start failures", () => {
    let server: ProcessServer;

    before(async () => {
      server = new ProcessServer(await freePortWindow(10), ["--max-attempts", "2", "--retry-backoff", "10ms..20ms"]);
      await server.start();
    });
    after(async () => {
      await server?.cleanup();
    });

    it("fails a start whose health check never passes, naming the check, and leaves no process", async () => {
      const group = "nope";
      await server.client.setTemplate({
        group,
        template: {
          command: process.execPath,
          args: [CHAT_EXAMPLE],
          env: {},
          healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "/nope", intervalMs: 200, timeoutMs: 500, failureThreshold: 2, startTimeoutMs: 1000 },
          stopGraceMs: 0,
        },
      });
      const graph = await update(server.client, { group, count: 1, version: 1 });
      assertFailed(graph, /after 2 attempts: node \S+ did not pass its health check within 1000ms \(last: GET \/nope answered 404\)/);
      await assertConsistent(server, group);
      const nodes = await liveNodes(server.client, group);
      assert.deepEqual(nodes.map((node) => NodeState[node.state]), [NodeState[NodeState.NODE_STATE_FAILED]]);
      assert.match(nodes[0]!.error, /did not pass its health check/);
    });

    it("replaces a running node that turns unhealthy", async (t) => {
      const group = "flaky";
      const flags = join(server.dataDir, "flags");
      mkdirSync(flags);
      // Answers 200 until its flag file exists, then 500.
      const script = [
        "const fs = require('node:fs');",
        "require('node:http').createServer((req, res) => { res.writeHead(fs.existsSync(process.env.FLAG) ? 500 : 200); res.end(); })",
        ".listen(Number(process.env.PORT), '127.0.0.1');",
      ].join(" ");
      await server.client.setTemplate({
        group,
        template: {
          command: process.execPath,
          args: ["-e", script],
          env: { FLAG: join(flags, "unhealthy-{node_id}") },
          healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_HTTP, path: "/healthz", intervalMs: 200, timeoutMs: 500, failureThreshold: 2, startTimeoutMs: 5000 },
          stopGraceMs: 1000,
        },
      });
      assertSucceeded(await update(server.client, { group, count: 3, version: 1 }));
      const before = await liveNodes(server.client, group);
      assert.equal(before.length, 3);
      const knownGraphs = new Set((await server.client.listGraphs({ group })).graphs.map((graph) => graph.id));

      const watching = new AbortController();
      t.after(() => watching.abort());
      const events: Event[] = [];
      let snapshot: Node[] | undefined;
      const watcher = (async () => {
        for await (const message of server.client.watchNodes({ group }, { signal: watching.signal })) {
          snapshot ??= message.snapshot;
          events.push(...message.events);
        }
      })().catch(() => undefined);
      const watched = await eventually(async () => snapshot, "WatchNodes sends its snapshot", 5000);
      assert.deepEqual(watched.map((node) => node.id).sort(), before.map((node) => node.id).sort());

      const victim = before[1]!;
      writeFileSync(join(flags, `unhealthy-${victim.id}`), "");
      await eventually(
        async () => events.find((event) => event.nodeId === victim.id && event.nodeState === NodeState.NODE_STATE_UNHEALTHY),
        "WatchNodes reports the node unhealthy",
        10_000,
      );
      const repair = await eventually(
        async () => (await server.client.listGraphs({ group })).graphs.find((graph) => !knownGraphs.has(graph.id)),
        "a repair graph is made",
        10_000,
      );
      assert.equal(GraphReason[repair.reason], GraphReason[GraphReason.GRAPH_REASON_REPAIR]);
      const done = await settled(server.client, repair.id);
      assertSucceeded(done);
      assert.ok(done.tasks.some((task) => task.action === TaskAction.TASK_ACTION_SHUT_DOWN_NODE && task.nodeId === victim.id));
      watching.abort();
      await watcher;

      const nodes = await liveNodes(server.client, group);
      assert.deepEqual(nodes.map((node) => NodeState[node.state]), Array(3).fill(NodeState[NodeState.NODE_STATE_RUNNING]));
      assert.ok(!nodes.some((node) => node.id === victim.id), "the unhealthy node was replaced");
      const stopped = (await server.client.listNodes({ group, all: true })).nodes.find((node) => node.id === victim.id);
      assert.equal(NodeState[stopped!.state], NodeState[NodeState.NODE_STATE_STOPPED]);
      await assertConsistent(server, group);
    });

    it("fails a graph whose template command does not exist, saying it was not found", async () => {
      const group = "missing";
      await server.client.setTemplate({ group, template: { command: "/nonexistent/prog", args: [], env: {}, stopGraceMs: 0 } });
      const graph = await update(server.client, { group, count: 1, version: 1 });
      assertFailed(graph, /after 1 attempt: command "\/nonexistent\/prog" of group missing's template was not found/);
      await assertConsistent(server, group);
      const [node] = await liveNodes(server.client, group);
      assert.ok(!existsSync(join(server.dataDir, "nodes", `${node!.id}.json`)), "no record is left for the node");
    });

    it("fails a graph whose node exits as it starts, naming its log", async () => {
      const group = "quitter";
      await server.client.setTemplate({
        group,
        template: { command: process.execPath, args: ["-e", "console.log('quitting at once'); process.exit(3)"], env: {}, stopGraceMs: 0 },
      });
      const graph = await update(server.client, { group, count: 1, version: 1 });
      assertFailed(graph, /after 2 attempts: node (\S+) exited with code 3 as it started \(its log says: quitting at once\): see 'client nodes logs \1'/);
      await assertConsistent(server, group);
      const [node] = await liveNodes(server.client, group);
      assert.match(readNodeLog(join(server.dataDir, "logs", `${node!.id}.log`)), /quitting at once/);
    });

    it("refuses an invalid template with INVALID_ARGUMENT and keeps the one it had", async () => {
      const group = "invalid";
      await expectStatus(
        server.client.setTemplate({ group, template: { command: "", args: [], env: {}, stopGraceMs: 0 } }),
        Status.INVALID_ARGUMENT,
        /template command is empty/,
      );
      await expectStatus(
        server.client.setTemplate({ group, template: { command: process.execPath, args: [], env: { PORT: "1" }, stopGraceMs: 0 } }),
        Status.INVALID_ARGUMENT,
        /template env PORT is set by the driver/,
      );
      const { isDefault, template } = await server.client.getTemplate({ group });
      assert.equal(isDefault, true);
      assert.deepEqual(template?.args, [CHAT_EXAMPLE]);
    });
  });

  describe("a port range too small for the group", () => {
    let server: ProcessServer;

    before(async () => {
      server = new ProcessServer(await freePortWindow(2), ["--max-attempts", "2", "--retry-backoff", "10ms..20ms"]);
      await server.start();
    });
    after(async () => {
      await server?.cleanup();
    });

    it("refuses a group whose nodes cannot each get a port of the range before it starts any (RESOURCE_EXHAUSTED)", async () => {
      const { first, last } = server.ports;
      await expectStatus(
        server.client.setSpec({ group: "crowded", count: 3, version: 1 }),
        Status.RESOURCE_EXHAUSTED,
        new RegExp(`ports: 3 nodes \\(count 3 \\+ max surge 0\\) need a port each, and --port-range ${first}\\.\\.${last} has 2: 1 short`),
      );
      // Refused before it started any: the group was never made.
      await expectStatus(server.client.listNodes({ group: "crowded" }), Status.NOT_FOUND, /group crowded does not exist/);
    });

    it("fails the graph with no free port when another program holds one, and keeps the nodes it could start", async () => {
      const group = "crowded";
      const { first, last } = server.ports;
      // Admission counts only nodes' ports: a port another program holds is found by a start.
      const squatter = createServer().listen(first, "127.0.0.1");
      await once(squatter, "listening");
      try {
        const graph = await update(server.client, { group, count: 2, version: 1 });
        assertFailed(graph, new RegExp(`no free port in ${first}\\.\\.${last}: all 2 are in use \\(1 of them by other programs\\);`));
        const nodes = await liveNodes(server.client, group);
        assert.deepEqual(nodes.map((node) => NodeState[node.state]).sort(), [NodeState[NodeState.NODE_STATE_FAILED], NodeState[NodeState.NODE_STATE_RUNNING]].sort());
        await assertConsistent(server, group);
        const ports = nodes.filter((node) => node.state === NodeState.NODE_STATE_RUNNING).map((node) => readRecord(server.dataDir, node.id).port);
        assert.deepEqual(ports, [last]);
      } finally {
        squatter.close();
      }
      await update(server.client, { group, count: 0, version: 1 });
    });

    it("skips a port of the range that another program holds", async () => {
      const group = "squatted";
      const squatter = createServer().listen(server.ports.first, "127.0.0.1");
      await once(squatter, "listening");
      try {
        const graph = await update(server.client, { group, count: 1, version: 1 });
        assertSucceeded(graph);
        const [node] = await liveNodes(server.client, group);
        assert.equal(readRecord(server.dataDir, node!.id).port, server.ports.last);
        await update(server.client, { group, count: 0, version: 1 });
      } finally {
        squatter.close();
      }
    });
  });
});
