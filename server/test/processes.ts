import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DroverServiceDefinition } from "@drover/shared";
import { createChannel, createClient, Metadata } from "nice-grpc";

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

export function startServer(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; exited: Promise<Exited> } {
  const child = spawn(SERVER_BIN, args, {
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
      await client.listNodes({}, { signal: AbortSignal.timeout(1000) });
      return client;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`server on port ${port} never answered`);
}

