import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DroverServiceDefinition, HealthCheckType, type NodeTemplate } from "@drover/shared";
import { ClientError, createChannel, createClient, Metadata, Status } from "nice-grpc";
import { outputText } from "../src/drivers/logRecords.js";

/** Helpers for tests that run the real server program as a child process. */

const SERVER_BIN = fileURLToPath(new URL("../../../bin/server", import.meta.url));

export async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, "close");
  return port;
}

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The servers' user config directory (where they record their tokens): one per test process, not the real one. */
let configHome: string | undefined;
function testConfigHome(): string {
  if (!configHome) {
    const dir = mkdtempSync(join(tmpdir(), "drover-config-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    configHome = dir;
  }
  return configHome;
}

/** Starts bin/server with these flags (in `options.cwd`, relative paths among them relative to it). */
export function startServer(args: string[], env: NodeJS.ProcessEnv = {}, options: { cwd?: string } = {}): { child: ChildProcess; exited: Promise<Exited> } {
  const child = spawn(SERVER_BIN, args, {
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, XDG_CONFIG_HOME: testConfigHome(), ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<Exited>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited };
}

/** A client of the server on the port, once it answers, with the token from its data dir. */
export async function waitUntilServing(port: number, dataDir: string) {
  for (let i = 0; i < 200; i++) {
    try {
      const token = readFileSync(join(dataDir, "token"), "utf8").trim();
      const client = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${port}`), {
        "*": { metadata: Metadata({ authorization: `Bearer ${token}` }) },
      });
      // Any answer of the service will do: a group that does not exist yet is NOT_FOUND.
      await client.listNodes({}, { signal: AbortSignal.timeout(1000) }).catch((error: unknown) => {
        if (!(error instanceof ClientError && error.code === Status.NOT_FOUND)) throw error;
      });
      return client;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`server on port ${port} never answered`);
}

/** A node that answers HTTP on its port and runs `body` (Node.js, CommonJS). */
export function nodeScript(body: string, env: Record<string, string> = {}): NodeTemplate {
  return {
    command: process.execPath,
    args: ["-e", `require("node:http").createServer((q, r) => r.end("ok")).listen(Number(process.env.PORT), "127.0.0.1"); ${body}`],
    env,
    healthCheck: { type: HealthCheckType.HEALTH_CHECK_TYPE_TCP, path: "", intervalMs: 500, timeoutMs: 500, failureThreshold: 3, startTimeoutMs: 10_000 },
    stopGraceMs: 1000,
  };
}

const claimedPorts = new Set<number>();

/**
 * `size` consecutive ports that nothing listens on, claimed for this file. They are taken
 * from 21000..31999: above the server's default range (20000..20999) and below Linux's
 * ephemeral range (32768..), where an outgoing connection could hold a port by chance.
 */
export async function freePortWindow(size: number): Promise<{ first: number; last: number }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const first = 21_000 + Math.floor(Math.random() * (11_000 - size));
    const ports = Array.from({ length: size }, (_, i) => first + i);
    if (ports.some((port) => claimedPorts.has(port))) continue;
    const held: Server[] = [];
    let free = true;
    for (const port of ports) {
      const server = createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once("error", () => resolve(false));
        server.listen(port, "127.0.0.1", () => resolve(true));
      });
      if (!bound) {
        free = false;
        break;
      }
      held.push(server);
    }
    await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
    if (!free) continue;
    for (const port of ports) claimedPorts.add(port);
    return { first, last: first + size - 1 };
  }
  throw new Error(`found no ${size} consecutive free ports in 21000..31999`);
}


/** A node's output as its log file keeps it, without the time of each record (see logRecords.ts). */
export function readNodeLog(path: string): string {
  return outputText(readFileSync(path));
}
