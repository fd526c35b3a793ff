/**
 * Runs the real things for the client's end-to-end tests: a real server (bin/server) on a
 * free port with its SQLite file in a fresh temporary directory, and the real client
 * (bin/client) as a child process.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DroverServiceDefinition } from "@drover/shared";
import { ClientError, createChannel, createClient, Metadata, Status } from "nice-grpc";

/** The repository's root: this file runs from cli/dist/test/. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** The server to test against; DROVER_TEST_SERVER_BIN may point at another build of it. */
export const SERVER_BIN = process.env.DROVER_TEST_SERVER_BIN ?? join(REPO_ROOT, "bin/server");
export const CLIENT_BIN = join(REPO_ROOT, "bin/client");

/** Short latencies keep the tests fast; retries back off briefly. */
export const FAST_SERVER_FLAGS = ["--mock-latency", "20ms..60ms", "--parallelism", "4", "--retry-backoff", "10ms..50ms"];

/** How long one client run may take before the test calls it hung. */
const CLIENT_TIMEOUT_MS = 60_000;
const SERVER_READY_TIMEOUT_MS = 15_000;

export interface ClientResult {
  /** The exit code; null when the client was killed (by the hang timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A port nobody listens on right now: bind port 0, read the port, close. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Runs bin/client with exactly these arguments; DROVER_* variables of the test's environment are not passed on. */
export function runClient(args: string[], env: Record<string, string> = {}): Promise<ClientResult> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("DROVER_")));
  return new Promise((resolve) => {
    execFile(
      CLIENT_BIN,
      args,
      { timeout: CLIENT_TIMEOUT_MS, env: { ...inherited, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A client run whose output can be read while it runs, and that can be sent a signal (Ctrl-C is SIGINT). */
export interface RunningClient {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<ClientResult>;
}

/** Starts bin/client with exactly these arguments, without waiting for it; like runClient, DROVER_* variables are not passed on. */
export function startClient(args: string[], env: Record<string, string> = {}): RunningClient {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("DROVER_")));
  const child = spawn(CLIENT_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...inherited, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // A client that hangs would hold the test run open: it gets what runClient's would.
  const killer = setTimeout(() => child.kill("SIGKILL"), CLIENT_TIMEOUT_MS);
  const exited = new Promise<ClientResult>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

export interface TestServer {
  readonly address: string;
  readonly port: number;
  readonly dataDir: string;
  /** Runs bin/client with `--server` pointing at this server. */
  client(args: string[], env?: Record<string, string>): Promise<ClientResult>;
  /** Starts bin/client with `--server` pointing at this server, without waiting for it. */
  start(args: string[], env?: Record<string, string>): RunningClient;
  /** Stops the server (SIGTERM, as an operator would) and keeps its data directory. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL, as a crash would: nothing is flushed or settled. Keeps its data directory. */
  kill(): Promise<void>;
  /**
   * Starts the server again on the same port and data directory (stopping it first if it
   * runs), with `flags` instead of the flags it had, when given; later restarts keep them.
   */
  restart(flags?: string[]): Promise<void>;
  /** Stops the server and removes its data directory. */
  close(): Promise<void>;
  /** What the server wrote to stderr, for failure messages. */
  log(): string;
}

/** Starts bin/server on a free port with a fresh data directory and waits until it answers. */
export async function startServer(flags: string[] = FAST_SERVER_FLAGS): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), "drover-cli-test-"));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const configHome = join(dataDir, "config");
  let child: ChildProcess | undefined;
  let output = "";

  const launch = async () => {
    // Served the default way, with a token: the server records it in the user's config
    // directory (a temporary one, shared with the client runs), where the client finds it.
    const started = spawn(SERVER_BIN, ["--data-dir", dataDir, "--listen", address, ...flags], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, XDG_CONFIG_HOME: configHome },
    });
    child = started;
    started.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    started.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitUntilServing(address, dataDir, started, () => output);
    } catch (error) {
      // A server that never answered would otherwise outlive the tests.
      await stop("SIGKILL");
      throw error;
    }
  };

  const stop = async (signal: "SIGTERM" | "SIGKILL" = "SIGTERM") => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
    running.kill(signal);
    const killer = setTimeout(() => running.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  };

  await launch();
  return {
    address,
    port,
    dataDir,
    client: (args, env) => runClient(["--server", address, ...args], { XDG_CONFIG_HOME: configHome, ...env }),
    start: (args, env) => startClient(["--server", address, ...args], { XDG_CONFIG_HOME: configHome, ...env }),
    stop: () => stop(),
    kill: () => stop("SIGKILL"),
    restart: async (newFlags) => {
      await stop();
      if (newFlags) flags = newFlags;
      await launch();
    },
    close: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
    log: () => output,
  };
}

/** Retries a ListNodes call until the server answers, or fails if it exits or takes too long. */
async function waitUntilServing(address: string, dataDir: string, child: ChildProcess, log: () => string): Promise<void> {
  const channel = createChannel(address);
  const deadline = Date.now() + SERVER_READY_TIMEOUT_MS;
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the server exited before serving (code ${child.exitCode}): ${log()}`);
      }
      try {
        const token = (await readFile(join(dataDir, "token"), "utf8")).trim();
        const client = createClient(DroverServiceDefinition, channel, { "*": { metadata: Metadata({ authorization: `Bearer ${token}` }) } });
        // Any answer of the service will do: a group that does not exist yet is NOT_FOUND.
        await client.listNodes({ group: "default" }, { signal: AbortSignal.timeout(1_000) }).catch((error: unknown) => {
          if (!(error instanceof ClientError && error.code === Status.NOT_FOUND)) throw error;
        });
        // The client finds the token in the credentials file, written once the server listens.
        await readFile(join(dataDir, "config", "drover", "credentials.json"), "utf8");
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`the server did not answer within ${SERVER_READY_TIMEOUT_MS}ms: ${log()}`, { cause: error });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } finally {
    channel.close();
  }
}

/** The lines of a text, without the empty last one. */
export function lines(text: string): string[] {
  return text.split("\n").filter((line, index, all) => line !== "" || index < all.length - 1);
}

/** Parses one JSON value per line. */
export function jsonLines(text: string): Record<string, any>[] {
  return lines(text).map((line) => JSON.parse(line) as Record<string, any>);
}

/** The graph id the update's summary or detach line names. */
export function graphIdIn(stdout: string): string {
  const match = /^graph ([0-9A-HJKMNP-TV-Z]{26}) /m.exec(stdout);
  if (!match) throw new Error(`no graph id in: ${stdout}`);
  return match[1]!;
}

/**
 * Calls `check` every `intervalMs` until it returns a value other than undefined, and returns
 * that; fails naming `what` (and the last value seen by `describe`) after `timeoutMs`.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${options.timeoutMs ?? 10_000}ms${options.describe ? `: ${options.describe()}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

export function assertExit(result: ClientResult, code: number): void {
  assert.equal(result.code, code, `exit code; stderr: ${result.stderr}; stdout: ${result.stdout}`);
}

/** Asserts an error: the exit code, and one line on stderr, prefixed `client: `, naming `names`. */
export function assertOneLineError(result: ClientResult, code: number, ...names: string[]): void {
  assertExit(result, code);
  assert.match(result.stderr, /^client: [^\n]+\n$/, `stderr is one line: ${JSON.stringify(result.stderr)}`);
  for (const name of names) assert.ok(result.stderr.includes(name), `stderr names ${name}: ${result.stderr}`);
  assert.equal(result.stdout, "");
}

/** The rows of the table at the top of the output, split into cells, header first. */
export function table(stdout: string): string[][] {
  const rows: string[][] = [];
  for (const line of lines(stdout)) {
    if (line.trim() === "") break;
    rows.push(line.trim().split(/\s{2,}/));
  }
  return rows;
}

/** Runs a command with `-o json` and parses its one JSON document. */
export async function json(server: TestServer, args: string[]): Promise<Record<string, any>> {
  const result = await server.client([...args, "-o", "json"]);
  assertExit(result, 0);
  return JSON.parse(result.stdout) as Record<string, any>;
}
