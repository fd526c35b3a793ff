import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ChannelOptions, credentials, Client as GrpcClient, Metadata as GrpcMetadata } from "@grpc/grpc-js";
import { DroverServiceDefinition, type DroverServiceClient } from "@drover/shared";
import DatabaseConstructor, { type Database } from "better-sqlite3";
import { createChannel, createClient, Metadata } from "nice-grpc";
import { DATABASE_FILE } from "../src/store/SqliteStore.js";

const SERVER_MAIN = fileURLToPath(new URL("../src/main.js", import.meta.url));

/** Big graphs travel in big messages (a 100,000-task snapshot is several MB): lift the client's 4 MB default. */
export const CLIENT_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.max_receive_message_length": -1,
  // Each client its own connection, as separate programs would have.
  "grpc.use_local_subchannel_pool": 1,
};

/** One line of the server's JSON log. */
export interface LogRecord {
  time: number;
  msg: string;
  [field: string]: unknown;
}

export interface ServerProcessOptions {
  dataDir: string;
  /** Flags besides --listen, --data-dir and --log-level. */
  args: string[];
  /** Write a CPU profile (node --cpu-prof) into this directory when the server exits. */
  profileDir?: string;
}

/**
 * The real server program (what bin/server runs) as a child process on a free port, with
 * its own token and a throwaway config directory, so the user's is never touched.
 */
export class ServerProcess {
  readonly log: LogRecord[] = [];
  private stderr = "";
  private exited: Promise<void>;
  private readonly clients: { close: () => void }[] = [];
  port = 0;
  token = "";
  private stopped = false;
  /** When the child was spawned (Date.now()). */
  readonly spawnedAt: number;
  private constructor(
    readonly child: ChildProcess,
    readonly options: ServerProcessOptions,
    private readonly configHome: string,
  ) {
    this.spawnedAt = Date.now();
    let partial = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        try {
          this.log.push(JSON.parse(line) as LogRecord);
        } catch {
          // Not a log record (a stray write): ignore it.
        }
      }
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.exited = once(child, "exit").then(() => undefined);
  }

  /** Spawns the server and, unless told not to wait, resolves once it logs that it is ready. */
  static async start(options: ServerProcessOptions, waitUntilReady = true): Promise<ServerProcess> {
    const nodeFlags = options.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.profileDir}`] : [];
    // The server records its address and token for the local user: in a throwaway directory.
    const configHome = mkdtempSync(join(tmpdir(), "drover-bench-config-"));
    const child = spawn(
      process.execPath,
      [...nodeFlags, SERVER_MAIN, "--listen", "127.0.0.1:0", "--data-dir", options.dataDir, "--log-level", "info", ...options.args],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_OPTIONS: "", XDG_CONFIG_HOME: configHome } },
    );
    const server = new ServerProcess(child, options, configHome);
    if (waitUntilReady) await server.ready();
    return server;
  }

  /** Resolves once the server has logged "ready" (start-up and recovery done), with its port and token read. */
  async ready(timeoutMs = 600_000): Promise<void> {
    const started = await this.waitForLog("server started", timeoutMs);
    this.port = started.port as number;
    await this.waitForLog("ready", timeoutMs);
    this.token = readFileSync(join(this.options.dataDir, "token"), "utf8").trim();
  }

  /** The first log record with this message (and matching `where`), waiting for it. */
  async waitForLog(msg: string, timeoutMs = 600_000, where: (record: LogRecord) => boolean = () => true): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const found = this.log.find((record) => record.msg === msg && where(record));
      if (found) return found;
      if (exited) throw new Error(`server exited before logging "${msg}": ${this.stderr.trim().split("\n").at(-1) ?? ""}`);
      if (Date.now() > deadline) throw new Error(`server did not log "${msg}" within ${timeoutMs}ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** The server's database, opened read-only beside it (WAL lets a reader in while it writes). */
  openDatabase(): Database {
    return new DatabaseConstructor(join(this.options.dataDir, DATABASE_FILE), { readonly: true, fileMustExist: true });
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** A nice-grpc client on its own connection, carrying the token. */
  client(): DroverServiceClient {
    const channel = createChannel(this.address, undefined, CLIENT_CHANNEL_OPTIONS);
    this.clients.push(channel);
    return createClient(DroverServiceDefinition, channel, {
      "*": { metadata: Metadata({ authorization: `Bearer ${this.token}` }) },
    });
  }

  /**
   * Calls a unary method with a bare grpc-js client and does not decode the response (it
   * resolves with its size), so that many clients in one benchmark process measure the
   * server and not the client's protobuf decoding.
   */
  rawUnary(connection: { client: GrpcClient; metadata: GrpcMetadata }, method: string, request: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      connection.client.makeUnaryRequest(
        `/drover.v1.DroverService/${method}`,
        (bytes: Uint8Array) => Buffer.from(bytes),
        (bytes: Buffer) => bytes.length,
        request,
        connection.metadata,
        (error, size) => (error ? reject(error) : resolve(size!)),
      );
    });
  }

  /** A bare grpc-js client on its own connection, for streams the benchmark parses itself. */
  rawClient(): { client: GrpcClient; metadata: GrpcMetadata } {
    const client = new GrpcClient(this.address, credentials.createInsecure(), CLIENT_CHANNEL_OPTIONS);
    this.clients.push(client);
    const metadata = new GrpcMetadata();
    metadata.set("authorization", `Bearer ${this.token}`);
    return { client, metadata };
  }

  /** The most resident memory the server has held since it started (VmHWM), in bytes. */
  peakResidentBytes(): number {
    return this.statusField("VmHWM");
  }

  residentBytes(): number {
    return this.statusField("VmRSS");
  }

  /** CPU time the server has used so far (all threads, user + system), in seconds. */
  cpuSeconds(): number {
    const stat = readFileSync(`/proc/${this.child.pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in USER_HZ (100 a second on Linux).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  private statusField(name: string): number {
    const status = readFileSync(`/proc/${this.child.pid}/status`, "utf8");
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match) throw new Error(`/proc/${this.child.pid}/status has no ${name}`);
    return Number(match[1]) * 1024;
  }

  /** Stops the server as an operator would (SIGTERM) and waits until it has exited. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const client of this.clients) client.close();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 30_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.configHome, { recursive: true, force: true });
  }
}
