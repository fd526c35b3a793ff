import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { DroverServiceDefinition } from "@drover/shared";
import { createChannel, createClient } from "nice-grpc";

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

export function startServer(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; exited: Promise<Exited> } {
  const child = spawn(SERVER_BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<Exited>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited };
}

export async function waitUntilServing(port: number) {
  const client = createClient(DroverServiceDefinition, createChannel(`127.0.0.1:${port}`));
  for (let i = 0; i < 200; i++) {
    try {
      await client.listNodes({}, { signal: AbortSignal.timeout(1000) });
      return client;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`server on port ${port} never answered`);
}

