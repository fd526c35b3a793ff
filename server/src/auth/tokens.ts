import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync, renameSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { StorageError } from "../errors.js";

export const TOKEN_FILE = "token";

/**
 * The server's bearer token: read from `<data dir>/token`, or made (32 random bytes) and
 * written there with mode 0600 on first start. Returns the token and whether it was made.
 */
export function loadOrCreateToken(dataDir: string): { token: string; path: string; created: boolean } {
  const path = join(dataDir, TOKEN_FILE);
  if (existsSync(path)) {
    // Tightened rather than refused: the file is ours, and a copy made with a loose umask is a common slip.
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    const token = readFileSync(path, "utf8").trim();
    if (token.length < 16) throw new StorageError(`token file ${path} holds no usable token: delete it to have a new one made`);
    return { token, path, created: false };
  }
  const token = randomBytes(32).toString("base64url");
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "wx" });
  return { token, path, created: true };
}

/** Where the local user's Drover credentials live: $XDG_CONFIG_HOME/drover, or ~/.config/drover. */
export function credentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith("/") ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(base, "drover", "credentials.json");
}

export interface Credentials {
  servers: Record<string, { token: string }>;
}

/**
 * Records the server's addresses and token for the local user (mode 0600), so that the
 * client, run by the same user on this machine, finds the token of the server it talks to
 * with no flag, whatever data dir the server uses.
 */
export function recordCredentials(addresses: readonly string[], token: string, env: NodeJS.ProcessEnv = process.env): string {
  const path = credentialsFile(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let credentials: Credentials = { servers: {} };
  try {
    credentials = JSON.parse(readFileSync(path, "utf8")) as Credentials;
    credentials.servers ??= {};
  } catch {
    // Missing or unreadable: start afresh.
  }
  for (const address of addresses) credentials.servers[address] = { token };
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  renameSync(temporary, path);
  return path;
}

/** The addresses a client on this machine may use for a listen address: a wildcard host is reached through loopback. */
export function localAddresses(listen: string, port: number): string[] {
  const host = listen.slice(0, listen.lastIndexOf(":"));
  if (host === "0.0.0.0" || host === "[::]" || host === "::") return [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  if (host === "localhost" || host === "127.0.0.1") return [`127.0.0.1:${port}`, `localhost:${port}`];
  return [`${host}:${port}`];
}

/** Whether a listen address accepts connections from this machine only. */
export function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(":"));
  return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
