/**
 * The process driver's limits (issue 11, items 10 to 12): node logs capped and rotated, and
 * still read by `nodes logs` across a rotation and a server restart; each node in a dir of its
 * own; `--allow-commands`; template changes logged; `--node-user`. The real server program
 * runs real node processes; the tests look at them from outside (their files, /proc).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type DroverServiceClient, GraphState, NodeState, type NodeTemplate } from "@drover/shared";
import { Status } from "nice-grpc";
import { readLog } from "../src/api/readLog.js";
import { byteSizeIn } from "../src/config.js";
import { requireTemplate } from "../src/api/validate.js";
import { systemClock } from "../src/clock.js";
import { CommandPolicy } from "../src/drivers/CommandPolicy.js";
import { DriverError } from "../src/drivers/Driver.js";
import { ProcessDriver } from "../src/drivers/ProcessDriver.js";
import { resolveCommand } from "../src/drivers/resolveCommand.js";
import { RotatingLog } from "../src/drivers/RotatingLog.js";
import { templateDifferences } from "../src/reconciler/templateChanges.js";
import { DEFAULT_TEMPLATE } from "../src/templates.js";
import { freePort, freePortWindow, nodeScript, readNodeLog, startServer, waitUntilServing, type Exited } from "./processes.js";
import { drain, eventually, expectStatus, silentLogger, temporaryDataDir } from "./support.js";

// ---------------------------------------------------------------- helpers

/** The live processes whose DROVER_PEERS_FILE is under the data dir: the nodes a server on it started. */
function nodeProcessesUnder(dataDir: string): { pid: number; nodeId: string }[] {
  const found: { pid: number; nodeId: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "utf8");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
    } catch {
      continue;
    }
    const env = new Map(environ.split("\0").map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)] as const));
    if (!env.get("DROVER_PEERS_FILE")?.startsWith(join(dataDir, "/"))) continue;
    found.push({ pid: Number(entry), nodeId: env.get("DROVER_NODE_ID") ?? "" });
  }
  return found;
}

/** The real server program with the process driver, its stdout kept (JSON log lines at warn and above). */
class ProcessServer {
  readonly dataDir = mkdtempSync(join(tmpdir(), "drover-limits-"));
  client!: DroverServiceClient;
  stdout = "";
  private running?: ReturnType<typeof startServer>;
  private args?: string[];

  constructor(private readonly flags: (dataDir: string) => string[]) {}

  async start(): Promise<void> {
    if (!this.args) {
      const ports = await freePortWindow(6);
      this.args = [
        "--driver", "process",
        "--data-dir", this.dataDir,
        "--listen", `127.0.0.1:${await freePort()}`,
        "--port-range", `${ports.first}..${ports.last}`,
        "--log-level", "warn",
        "--min-ready", "0",
        ...this.flags(this.dataDir),
      ];
    }
    const running = startServer(this.args);
    this.running = running;
    running.child.stdout!.on("data", (chunk) => (this.stdout += chunk));
    const port = Number(this.args[this.args.indexOf("--listen") + 1]!.split(":")[1]);
    this.client = await Promise.race([
      waitUntilServing(port, this.dataDir),
      running.exited.then((exited: Exited) => {
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

  /** Replaces the flags for the next start (a restart with another configuration). */
  withFlags(flags: string[]): void {
    const fixed = this.args!.slice(0, this.args!.indexOf("--min-ready") + 2);
    this.args = [...fixed, ...flags];
  }

  async cleanup(): Promise<void> {
    await this.kill();
    for (let round = 0; round < 2; round++) {
      for (const { pid } of nodeProcessesUnder(this.dataDir)) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      }
      await sleep(50);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  logFiles(nodeId: string): string[] {
    return readdirSync(join(this.dataDir, "logs")).filter((file) => file.startsWith(`${nodeId}.log`)).sort();
  }
}

/** Prints `lines` numbered lines every 10 ms, each padded to about `width` bytes. */
function counter(lines: number, width: number): NodeTemplate {
  return nodeScript(
    `let n = 0; const pad = "x".repeat(${width}); setInterval(() => { let out = ""; for (let k = 0; k < ${lines}; k++) out += "line " + (n++) + " " + pad + "\\n"; process.stdout.write(out); }, 10);`,
  );
}

async function startGroup(client: DroverServiceClient, group: string, template: NodeTemplate, count = 1): Promise<string[]> {
  const { graph } = await client.setSpec({ group, count, version: 1, template });
  await drain(client.watchGraph({ graphId: graph!.id }, { signal: AbortSignal.timeout(30_000) }));
  const settled = (await client.getGraph({ graphId: graph!.id })).graph!;
  assert.equal(GraphState[settled.state], GraphState[GraphState.GRAPH_STATE_SUCCEEDED], settled.error);
  return (await client.listNodes({ group })).nodes.map((node) => node.id);
}

/** The numbers of the whole `line N …` lines in a text. */
function lineNumbers(text: string): number[] {
  return [...text.matchAll(/^line (\d+) x*$/gm)].map((match) => Number(match[1]));
}

function assertConsecutive(numbers: number[], what: string): void {
  const gaps = numbers.slice(1).flatMap((n, i) => (n === numbers[i]! + 1 ? [] : [`${numbers[i]} → ${n}`]));
  assert.deepEqual(gaps, [], `${what}: ${numbers.length} lines from ${numbers[0]} to ${numbers.at(-1)}`);
}

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

const tmpfsSkip = process.getuid?.() === 0 ? false : "needs root to mount a small tmpfs";

// ---------------------------------------------------------------- the pieces

describe("the process driver's pieces", () => {
  it("matches --allow-commands globs within a segment (*) or across segments (**), against absolute paths", () => {
    const policy = CommandPolicy.parse("/usr/bin/python3, /opt/app/*,/srv/**/run, /usr/bin/nod?");
    const table: [string, boolean][] = [
      ["/usr/bin/python3", true],
      ["/usr/bin/python3.11", false],
      ["/opt/app/server", true],
      ["/opt/app/bin/server", false],
      ["/srv/a/b/c/run", true],
      ["/srv/run", false],
      ["/usr/bin/node", true],
      ["/usr/bin/nodejs", false],
      ["/bin/sh", false],
    ];
    assert.deepEqual(table.map(([command]) => [command, policy.allows(command)]), table);
    assert.throws(() => CommandPolicy.parse("python3"), /"python3" is not an absolute path: write it like \/usr\/bin\/python3/);
    assert.throws(() => CommandPolicy.parse(" , "), /names no command/);
  });

  it("refuses under --allow-commands an env that makes an allowed program load other code, at every start too, and checks no env without the list", async (t) => {
    const driver = (commands?: CommandPolicy) => {
      const dataDir = temporaryDataDir(t);
      const made = new ProcessDriver({ dataDir, ports, commands, templateOf: async () => preloading, clock: systemClock, logger: silentLogger });
      t.after(() => made.close());
      return { driver: made, dataDir };
    };
    const ports = await freePortWindow(1);
    const preloading = requireTemplate({ ...nodeScript(""), env: { GREETING: "hi", LD_PRELOAD: "/tmp/drover-test-preload.so" } });
    assert.equal(driver().driver.commandProblem, undefined, "without --allow-commands any env goes, as any command does");

    const { driver: listed, dataDir } = driver(CommandPolicy.parse(process.execPath));
    const refusal = new RegExp(
      `^template env LD_PRELOAD \\(read by the dynamic loader\\) makes an allowed program load code the template chooses, so this server's --allow-commands \\(${process.execPath}\\) refuses it: remove it from the template's env$`,
    );
    assert.match(listed.commandProblem!("g", preloading)!, refusal);
    assert.equal(listed.commandProblem!("g", { ...preloading, env: { GREETING: "hi", PYTHONUNBUFFERED: "1", LD: "x" } }), undefined, "other variables go");
    const several = listed.commandProblem!("g", { ...preloading, env: { NODE_OPTIONS: "--require /tmp/x.js", BASH_ENV: "/tmp/x.sh", ENV: "/tmp/x.sh", PYTHONSTARTUP: "/tmp/x.py", PERL5OPT: "-Mx", LD_AUDIT: "/tmp/x.so", LD_LIBRARY_PATH: "/tmp" } });
    assert.match(
      several!,
      /^template env BASH_ENV \(read by bash\), ENV \(read by sh\), LD_AUDIT \(read by the dynamic loader\), LD_LIBRARY_PATH \(read by the dynamic loader\), NODE_OPTIONS \(read by Node\.js\), PERL5OPT \(read by Perl\), PYTHONSTARTUP \(read by Python\) make an allowed program load code the template chooses, so .* refuses them: remove them/,
    );
    // A template stored before the list was given is refused at its node's start, for good.
    await assert.rejects(listed.start({ id: "01J0000000000000000000000A", group: "g", version: 1 }, AbortSignal.timeout(10_000)), (error: unknown) => {
      assert.ok(error instanceof DriverError);
      assert.equal(error.retryable, false);
      assert.match(error.message, /^group g's template env LD_PRELOAD \(read by the dynamic loader\) makes .* refuses it: remove it from the template's env, with 'client group set-template'$/);
      return true;
    });
    assert.deepEqual(readdirSync(join(dataDir, "nodes")), [], "nothing of the node is left");
  });

  it("resolves a command as exec would from the data dir: a relative path from it, a bare name along PATH", (t) => {
    const dir = temporaryDataDir(t);
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, "bin", "tool"), "#!/bin/sh\n");
    chmodSync(join(dir, "bin", "tool"), 0o755);
    writeFileSync(join(dir, "bin", "data"), "not executable");
    assert.equal(resolveCommand("./bin/tool", dir, undefined), join(dir, "bin", "tool"));
    assert.equal(resolveCommand("../../../../../../../../bin/sh", dir, undefined), "/bin/sh");
    assert.equal(resolveCommand("tool", dir, "/nonexistent:bin"), join(dir, "bin", "tool"), "a relative PATH entry is from the data dir");
    assert.equal(resolveCommand("data", dir, "bin"), undefined, "a file that cannot be executed is passed over");
    assert.equal(resolveCommand("sh", dir, "/nonexistent:/bin"), "/bin/sh");
  });

  it("reads sizes as Docker does, in powers of 1024", () => {
    const size = byteSizeIn(1024, 1024 ** 4);
    assert.deepEqual(["10MiB", "10m", "10MB", "512KiB", "1g", "4096"].map(size), [10485760, 10485760, 10485760, 524288, 1073741824, 4096]);
    assert.throws(() => size("10XB"), /"10XB" is not a size: write it like 10MiB/);
    assert.throws(() => size("100"), /"100" must be a size from 1KiB to 1TiB/);
  });

  it("rotates a log before it passes its cap, keeping whole lines and at most max-files files", (t) => {
    const dir = temporaryDataDir(t);
    const path = join(dir, "node.log");
    const log = new RotatingLog(path, { maxBytes: 100, maxFiles: 3 }, (error) => assert.fail(error));
    for (let i = 0; i < 60; i++) log.append(Buffer.from(`line ${i} ${"x".repeat(i % 7)}\n`));
    log.append(Buffer.from(`${"y".repeat(250)}\n`));
    log.append(Buffer.from("line 60 \n"));
    log.close();
    assert.deepEqual(readdirSync(dir).sort(), ["node.log", "node.log.1", "node.log.2"]);
    for (const file of readdirSync(dir)) {
      assert.ok(statSync(join(dir, file)).size <= 100, `${file} is ${statSync(join(dir, file)).size} bytes`);
      assert.equal(mode(join(dir, file)), "600");
    }
    const kept = ["node.log.2", "node.log.1", "node.log"].map((file) => readFileSync(join(dir, file), "utf8")).join("");
    assert.equal(kept, `${"y".repeat(250)}\nline 60 \n`, "a line longer than the cap is split over files; the newest output is kept");
  });

  it("keeps a log's newest lines on a full disk, dropping its oldest file, and says what it could not write", { skip: tmpfsSkip }, (t) => {
    const dir = mkdtempSync(join(tmpdir(), "drover-full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
    t.after(() => {
      execFileSync("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    });
    const path = join(dir, "node.log");
    const errors: string[] = [];
    const log = new RotatingLog(path, { maxBytes: 40 * 1024, maxFiles: 2 }, (error) => errors.push((error as NodeJS.ErrnoException).code ?? error.message));
    writeFileSync(join(dir, "other"), Buffer.alloc(16 * 1024));
    const line = (n: number) => Buffer.from(`line ${n} ${"x".repeat(90)}\n`);
    // 100 KB through a log capped at 80 KiB on a disk with 48 KiB left: full before the first rotation.
    for (let n = 0; n < 1000; n++) log.append(line(n));
    assert.deepEqual(errors, [], "the log made room by dropping its own oldest file");
    assert.equal(lineNumbers(readFileSync(path, "utf8")).at(-1), 999, "the newest line is in the log");

    // Full to the last byte with another file: nothing can be written, once said.
    rmSync(join(dir, "node.log.1"), { force: true });
    try {
      writeFileSync(join(dir, "hog"), Buffer.alloc(1024 * 1024));
    } catch {
      // ENOSPC, once it has taken every byte left.
    }
    for (let n = 1000; n < 1100; n++) log.append(line(n));
    assert.deepEqual(errors, ["ENOSPC"], "one warning for the episode");
    rmSync(join(dir, "hog"));
    log.append(line(1100));
    log.close();
    const text = readFileSync(path, "utf8");
    assert.match(text, /^\[drover: \d+ bytes of this node's output were lost: ENOSPC\]\nline 1100 x+\n$/m);
  });

  it("reads a tail that begins in the rotated file, and follows the log across a rotation", async (t) => {
    const dir = temporaryDataDir(t);
    const path = join(dir, "node.log");
    const log = new RotatingLog(path, { maxBytes: 64, maxFiles: 2 }, (error) => assert.fail(error));
    for (let i = 0; i < 5; i++) log.append(Buffer.from(`line ${i} xxxxx\n`));
    const tail = await drain(readLog(path, { start: { bytes: 64 }, follow: false, timestamps: false, signal: new AbortController().signal, ended: async () => true }));
    assertConsecutive(lineNumbers(tail.join("")), "the tail");
    assert.equal(lineNumbers(tail.join("")).at(-1), 4);
    assert.ok(lineNumbers(tail.join("")).length >= 4, "the tail reaches back into node.log.1");

    const following = new AbortController();
    const seen: string[] = [];
    let writing = true;
    const follower = (async () => {
      for await (const text of readLog(path, { start: { lines: 0 }, follow: true, timestamps: false, signal: following.signal, ended: async () => !writing })) seen.push(text);
    })();
    // A rotation every 4 lines × 100 ms, slower than the follower's polls (250 ms): none is missed.
    for (let i = 5; i < 25; i++) {
      await sleep(100);
      log.append(Buffer.from(`line ${i} xxxxx\n`));
    }
    writing = false;
    await follower;
    log.close();
    assert.deepEqual(lineNumbers(seen.join("")), Array.from({ length: 20 }, (_, i) => i + 5), "what the follower read over five rotations");
  });

  it("logs a template change by what changed, naming env variables but not their values", () => {
    const before = { ...DEFAULT_TEMPLATE, env: { LEVEL: "info", OLD: "1" }, stopGraceMs: 1000 };
    const after = { ...DEFAULT_TEMPLATE, command: "/bin/sh", env: { LEVEL: "debug", API_KEY: "s3cret" }, stopGraceMs: 2000 };
    assert.deepEqual(templateDifferences(before, after), [
      `command ${process.execPath} → /bin/sh`,
      "env set API_KEY",
      "env changed LEVEL",
      "env removed OLD",
      "stop grace 1000ms → 2000ms",
    ]);
    assert.deepEqual(templateDifferences(before, { ...before }), []);
    assert.deepEqual(templateDifferences(undefined, { ...DEFAULT_TEMPLATE }), [], "the default, set as a template, runs the same");
  });
});

// ---------------------------------------------------------------- logs

describe("node logs with a size cap", { timeout: 120_000 }, () => {
  let server: ProcessServer;
  before(async () => {
    server = new ProcessServer(() => ["--node-log-max-size", "64KiB", "--node-log-max-files", "2"]);
    await server.start();
  });
  after(async () => {
    await server?.cleanup();
  });

  it("keeps a chatty node's log under --node-log-max-size in two files, and 'nodes logs' shows its newest lines", async () => {
    // About 600 KB a second: ten times the cap.
    const [nodeId] = await startGroup(server.client, "chatty", counter(100, 50));
    const current = join(server.dataDir, "logs", `${nodeId}.log`);
    const newest = () => lineNumbers(readNodeLog(current)).at(-1) ?? -1;
    await eventually(async () => (newest() > 20_000 ? true : undefined), "the node has written some 1.2 MB", 30_000);
    assert.deepEqual(server.logFiles(nodeId!), [`${nodeId}.log`, `${nodeId}.log.1`]);
    for (const file of server.logFiles(nodeId!)) {
      const path = join(server.dataDir, "logs", file);
      assert.ok(statSync(path).size <= 65_536, `${file} is ${statSync(path).size} bytes, over the 64 KiB cap`);
      assert.equal(mode(path), "600", `${file} is private`);
    }
    const before = newest();
    const text = (await drain(server.client.nodeLogs({ nodeId: nodeId!, tailBytes: 8192 }))).map((message) => message.text).join("");
    const shown = lineNumbers(text);
    assert.ok(shown.length > 50, `the tail holds whole lines: ${text.slice(0, 200)}`);
    assertConsecutive(shown, "the tail");
    assert.ok(shown.at(-1)! >= before, `the tail ends at line ${shown.at(-1)}, the newest when asked was ${before}`);
    const cut = text.slice(0, -1).split("\n").filter((line) => !/^line \d+ x{50}$/.test(line));
    assert.ok(cut.length <= 1, `only the tail's first line may be cut: ${cut.slice(0, 3).join(" | ")}`);
  });

  it("follows a node's log across its rotations without losing or repeating a line", async () => {
    // About 32 KB a second: a rotation every two seconds.
    const [nodeId] = await startGroup(server.client, "steady", counter(5, 50));
    const current = join(server.dataDir, "logs", `${nodeId}.log`);
    await eventually(async () => (statSync(current, { throwIfNoEntry: false })?.size ? true : undefined), "the node has written");
    const firstInode = statSync(current).ino;
    const following = new AbortController();
    const seen: string[] = [];
    const follower = (async () => {
      for await (const message of server.client.nodeLogs({ nodeId: nodeId!, follow: true, tailBytes: 1 }, { signal: following.signal })) seen.push(message.text);
    })().catch(() => undefined);
    // Two rotations: the follower went through one whole file it found under the name.
    let rotations = 0;
    let inode = firstInode;
    await eventually(
      async () => {
        const now = statSync(current).ino;
        if (now !== inode) [rotations, inode] = [rotations + 1, now];
        return rotations >= 2 ? true : undefined;
      },
      "the log has rotated twice",
      30_000,
    );
    const lastWritten = lineNumbers(readNodeLog(current)).at(-1)!;
    await eventually(async () => ((lineNumbers(seen.join("")).at(-1) ?? -1) >= lastWritten ? true : undefined), "the follower has caught up", 10_000);
    following.abort();
    await follower;
    const numbers = lineNumbers(seen.join("")).slice(1);
    assertConsecutive(numbers, "what 'nodes logs -f' printed");
    // A rotated file is full: what one file holds, each line with the time it arrived.
    const oneFile = lineNumbers(readNodeLog(`${current}.1`)).length;
    assert.ok(numbers.length > oneFile, `it printed ${numbers.length} lines, more than one file holds (${oneFile})`);
  });

  it("keeps logging after a server restart: what the node wrote while no server ran is in its log, and the cap still holds", async () => {
    // About 1.5 KB a second: no rotation within the test, so the whole log is there to check.
    const [slow] = await startGroup(server.client, "slow", counter(1, 1));
    const [chatty] = (await server.client.listNodes({ group: "chatty" })).nodes.map((node) => node.id);
    const slowLog = join(server.dataDir, "logs", `${slow}.log`);
    const chattyLog = join(server.dataDir, "logs", `${chatty}.log`);
    const pids = new Map(nodeProcessesUnder(server.dataDir).map(({ nodeId, pid }) => [nodeId, pid]));
    await eventually(async () => ((lineNumbers(readNodeLog(slowLog)).at(-1) ?? 0) > 50 ? true : undefined), "the slow node has written");
    await server.kill();
    const lastBeforeRestart = lineNumbers(readNodeLog(slowLog)).at(-1)!;
    await sleep(1500);
    await server.start();
    await eventually(
      async () => ((lineNumbers(readNodeLog(slowLog)).at(-1) ?? 0) > lastBeforeRestart + 200 ? true : undefined),
      "the slow node's log goes on after the restart",
      20_000,
    );
    const numbers = lineNumbers(readNodeLog(slowLog));
    assert.equal(numbers[0], 0);
    assertConsecutive(numbers, "the slow node's log across the restart");
    // The chatty node, blocked while no server read its pipe, goes on, and its log is still capped.
    const chattyBefore = lineNumbers(readNodeLog(chattyLog)).at(-1)!;
    await eventually(async () => ((lineNumbers(readNodeLog(chattyLog)).at(-1) ?? 0) > chattyBefore + 5000 ? true : undefined), "the chatty node writes on", 20_000);
    for (const file of server.logFiles(chatty!)) assert.ok(statSync(join(server.dataDir, "logs", file)).size <= 65_536, file);
    assert.deepEqual(
      new Map(nodeProcessesUnder(server.dataDir).map(({ nodeId, pid }) => [nodeId, pid])),
      pids,
      "the restart re-adopted the same processes",
    );
  });

  it("logs every template change at warn, saying what changed", async () => {
    const warnings = () =>
      server.stdout
        .split("\n")
        .filter((line) => line.includes("node template changed"))
        .map((line) => JSON.parse(line) as { level: number; msg: string; group: string; changes: string[] });
    const changed = warnings().find((entry) => entry.group === "chatty")!;
    assert.equal(changed.level, 40);
    assert.match(changed.msg, /^group chatty's node template changed \(revision 1, update\): was the server's default; args \[.*\] → \["-e",.*; health check http \/healthz .* → tcp .*; stop grace 5000ms → 1000ms$/);
    await server.client.setTemplate({ group: "slow", template: { ...counter(1, 1), stopGraceMs: 3000 } });
    const regrace = await eventually(async () => warnings().find((entry) => entry.group === "slow" && entry.msg.includes("revision 2")), "the second change is logged");
    assert.deepEqual(regrace.changes, ["stop grace 1000ms → 3000ms"]);
    await server.client.setTemplate({ group: "unused", template: { ...counter(1, 1), command: "/bin/true" } });
    const kept = await eventually(async () => warnings().find((entry) => entry.group === "unused"), "a template kept for a first update is logged");
    assert.match(kept.msg, /\(kept for its first update\): was the server's default; command \S+ → \/bin\/true/);
  });
});

// ---------------------------------------------------------------- dirs and commands

describe("each node in its own dir, and --allow-commands", { timeout: 120_000 }, () => {
  let server: ProcessServer;
  before(async () => {
    server = new ProcessServer((dataDir) => ["--allow-commands", `${process.execPath},${join(dataDir, "bin")}/*`]);
    await server.start();
  });
  after(async () => {
    await server?.cleanup();
  });

  it("runs each node in a 0700 dir of its own, not the data dir, keeps its record and log 0600, and still finds a relative command from the data dir", async () => {
    mkdirSync(join(server.dataDir, "bin"));
    writeFileSync(join(server.dataDir, "bin", "run-node"), `#!/bin/sh\nexec "${process.execPath}" "$@"\n`);
    chmodSync(join(server.dataDir, "bin", "run-node"), 0o755);
    const template = {
      ...nodeScript(`let token; try { require("node:fs").readFileSync("token"); token = "read"; } catch (error) { token = error.code; } console.log("cwd=" + process.cwd() + " token=" + token);`),
      command: "bin/run-node",
    };
    const [nodeId] = await startGroup(server.client, "where", template);
    const nodeDir = join(server.dataDir, "nodes", nodeId!);
    const [found] = nodeProcessesUnder(server.dataDir).filter((node) => node.nodeId === nodeId);
    assert.equal(readlinkSync(`/proc/${found!.pid}/cwd`), nodeDir);
    assert.notEqual(nodeDir, server.dataDir);
    assert.equal(mode(nodeDir), "700");
    assert.equal(mode(join(server.dataDir, "nodes")), "700");
    assert.equal(mode(join(server.dataDir, "nodes", `${nodeId}.json`)), "600");
    const log = join(server.dataDir, "logs", `${nodeId}.log`);
    await eventually(async () => (readNodeLog(log).includes("token=") ? true : undefined), "the node has said where it runs");
    assert.match(readNodeLog(log), new RegExp(`^cwd=${nodeDir} token=ENOENT$`, "m"));
    assert.equal(mode(log), "600");

    const { graph } = await server.client.setSpec({ group: "where", count: 0, version: 1 });
    await drain(server.client.watchGraph({ graphId: graph!.id }));
    await eventually(async () => (readdirSync(join(server.dataDir, "nodes")).some((entry) => entry.startsWith(nodeId!)) ? undefined : true), "the node's dir is removed with it");
    assert.match(readNodeLog(log), /token=ENOENT/, "its log stays");
  });

  it("refuses a template whose command --allow-commands does not allow, naming the command and the flag", async () => {
    const shell = { ...nodeScript(""), command: "/bin/sh", args: ["-c", "sleep 60"] };
    await expectStatus(
      server.client.setTemplate({ group: "a", template: shell }),
      Status.FAILED_PRECONDITION,
      /^group a: template command "\/bin\/sh" is not allowed by this server's --allow-commands \(\S+\): use an allowed command/,
    );
    await expectStatus(
      server.client.setTemplate({ group: "a", template: { ...shell, command: "../../../../../../../../bin/sh" } }),
      Status.FAILED_PRECONDITION,
      /template command "..\/..\/..\/..\/..\/..\/..\/..\/bin\/sh" \(\/bin\/sh\) is not allowed/,
    );
    await expectStatus(
      server.client.setSpec({ group: "b", count: 1, version: 1, template: { ...shell, command: "sh" } }),
      Status.FAILED_PRECONDITION,
      /template command "sh" \(\/\S*bin\/sh\) is not allowed by this server's --allow-commands/,
    );
    assert.equal((await server.client.getTemplate({ group: "a" })).isDefault, true, "nothing was stored");
    await expectStatus(server.client.listRevisions({ group: "b" }), Status.NOT_FOUND, /group b does not exist/);
    await startGroup(server.client, "c", { ...nodeScript(""), command: process.execPath });
  });

  it("refuses a template whose env would make an allowed command load other code, naming the variable and the flag", async () => {
    const allowed = nodeScript("");
    await expectStatus(
      server.client.setTemplate({ group: "env", template: { ...allowed, env: { LD_PRELOAD: "/tmp/drover-test-preload.so" } } }),
      Status.FAILED_PRECONDITION,
      /^group env: template env LD_PRELOAD \(read by the dynamic loader\) makes an allowed program load code the template chooses, so this server's --allow-commands \(\S+\) refuses it: remove it from the template's env$/,
    );
    await expectStatus(
      server.client.setSpec({ group: "env", count: 1, version: 1, template: { ...allowed, env: { GREETING: "hi", NODE_OPTIONS: "--require /tmp/x.js" } } }),
      Status.FAILED_PRECONDITION,
      /^group env: template env NODE_OPTIONS \(read by Node\.js\) makes an allowed program load code/,
    );
    assert.equal((await server.client.getTemplate({ group: "env" })).isDefault, true, "nothing was stored");
    await expectStatus(server.client.listRevisions({ group: "env" }), Status.NOT_FOUND, /group env does not exist/);
    await server.client.setTemplate({ group: "env", template: { ...allowed, env: { GREETING: "hi", PYTHONUNBUFFERED: "1" } } });
  });

  it("refuses to start a node whose command the list no longer allows, after the operator tightens it", async () => {
    await server.kill();
    server.withFlags(["--allow-commands", "/opt/drover-test-nothing/*"]);
    await server.start();
    await expectStatus(
      server.client.setSpec({ group: "c", count: 2, version: 1 }),
      Status.FAILED_PRECONDITION,
      new RegExp(`template command "${process.execPath}" is not allowed by this server's --allow-commands \\(/opt/drover-test-nothing/\\*\\)`),
    );
    // A restart starts the node again from the group's template: the driver checks it too.
    const [running] = (await server.client.listNodes({ group: "c" })).nodes;
    const { graph } = await server.client.restartNode({ nodeId: running!.id });
    await drain(server.client.watchGraph({ graphId: graph!.id }, { signal: AbortSignal.timeout(30_000) }));
    const failed = (await server.client.getGraph({ graphId: graph!.id })).graph!;
    assert.equal(GraphState[failed.state], GraphState[GraphState.GRAPH_STATE_FAILED]);
    assert.match(failed.error, new RegExp(`command "${process.execPath}" of group c's template is not allowed by --allow-commands \\(/opt/drover-test-nothing/\\*\\)`));
  });
});

// ---------------------------------------------------------------- --node-user

const root = process.getuid?.() === 0;
const hasNobody = (() => {
  try {
    return execFileSync("getent", ["passwd", "nobody"], { encoding: "utf8" }).split(":")[2] === "65534";
  } catch {
    return false;
  }
})();
const nodeUserSkip = !root ? "needs root: only root can start a process as another user" : !hasNobody ? "needs the user nobody (uid 65534)" : false;

describe("--node-user", { timeout: 120_000 }, () => {
  it("refuses to start with a user that does not exist, in one line", async (t) => {
    const { exited } = startServer(["--driver", "process", "--data-dir", temporaryDataDir(t), "--listen", `127.0.0.1:${await freePort()}`, "--node-user", "no-such-user-drover"]);
    const { code, stderr } = await exited;
    assert.equal(code, 1);
    assert.equal(stderr.trim(), "server: --node-user no-such-user-drover: no such user on this host: create it, or name another");
  });

  it("runs nodes as uid 65534 in a dir of theirs, where they reach their peers file but not the token or the database", { skip: nodeUserSkip }, async (t) => {
    const server = new ProcessServer(() => ["--node-user", "nobody"]);
    t.after(() => server.cleanup());
    await server.start();
    const probe = nodeScript(
      [
        `const fs = require("node:fs");`,
        `const tryRead = (path) => { try { fs.readFileSync(path); return "read"; } catch (error) { return error.code; } };`,
        `console.log("uid=" + process.getuid() + " gid=" + process.getgid() + " home=" + process.env.HOME + " token=" + tryRead(process.env.TOKEN) + " db=" + tryRead(process.env.DB));`,
        `fs.writeFileSync("scratch", "mine");`,
        `const peers = setInterval(() => { const seen = tryRead(process.env.DROVER_PEERS_FILE); if (seen !== "ENOENT") { console.log("peers=" + seen); clearInterval(peers); } }, 100);`,
      ].join(" "),
      { TOKEN: join(server.dataDir, "token"), DB: join(server.dataDir, "drover.db") },
    );
    const [nodeId] = await startGroup(server.client, "confined", probe);
    const [found] = nodeProcessesUnder(server.dataDir).filter((node) => node.nodeId === nodeId);
    assert.match(readFileSync(`/proc/${found!.pid}/status`, "utf8"), /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    const log = join(server.dataDir, "logs", `${nodeId}.log`);
    await eventually(async () => (readNodeLog(log).includes("peers=") ? true : undefined), "the node has looked for its peers", 10_000);
    const said = readNodeLog(log);
    assert.match(said, /^uid=65534 gid=65534 home=\S+ token=EACCES db=EACCES$/m);
    assert.match(said, /^peers=read$/m);
    const nodeDir = join(server.dataDir, "nodes", nodeId!);
    assert.equal(statSync(nodeDir).uid, 65534);
    assert.equal(mode(nodeDir), "700");
    assert.equal(statSync(join(nodeDir, "scratch")).uid, 65534, "the node writes in its dir");
    assert.equal(statSync(log).uid, 0, "the server writes the log");
    assert.equal(mode(log), "600");
    assert.equal(mode(server.dataDir), "710", "nodes pass through the data dir, and list nothing");

    // A second server on the same data dir is refused before it touches anything: it once
    // tightened the dir to 0700 on its way to the lock, and the running server's nodes lost it.
    const second = startServer(["--driver", "process", "--data-dir", server.dataDir, "--listen", `127.0.0.1:${await freePort()}`, "--node-user", "nobody"]);
    const refused = await second.exited;
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /data dir .* is in use by pid \d+/);
    assert.equal(mode(server.dataDir), "710", "the refused server left the data dir's mode alone");
    assert.equal(statSync(server.dataDir).gid, 65534, "and its group");

    const { graph } = await server.client.setSpec({ group: "confined", count: 0, version: 1 });
    await drain(server.client.watchGraph({ graphId: graph!.id }));
    await eventually(async () => (readdirSync(join(server.dataDir, "nodes")).some((entry) => entry.startsWith(nodeId!)) ? undefined : true), "the node's dir is removed with it");
    assert.equal((await server.client.listNodes({ group: "confined", all: true })).nodes[0]!.state, NodeState.NODE_STATE_STOPPED);
  });
});
