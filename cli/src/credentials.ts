import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { UsageError } from "./errors.js";

/** Where a server on this machine records its address and token for the local user. */
export function credentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith("/") ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(base, "drover", "credentials.json");
}

export interface TokenSources {
  token?: string;
  tokenFile?: string;
  /** Where each was given: on the command line, or in the environment (DROVER_TOKEN, DROVER_TOKEN_FILE). */
  givenIn?: { token?: "cli" | "env"; tokenFile?: "cli" | "env" };
}

/** A token to send, and where it came from in the user's words, to follow "the token": `from DROVER_TOKEN`, `in /srv/drover/token (--token-file)`. */
export interface ResolvedToken {
  token: string;
  from: string;
}

/**
 * The token to send to `server`: --token (or DROVER_TOKEN), else the file named by
 * --token-file (or DROVER_TOKEN_FILE), else what a server on this machine recorded for
 * that address in the user's credentials file. Undefined when there is none.
 */
export function resolveToken(server: string, sources: TokenSources, env: NodeJS.ProcessEnv = process.env): ResolvedToken | undefined {
  if (sources.token) return { token: sources.token.trim(), from: sources.givenIn?.token === "env" ? "from DROVER_TOKEN" : "from --token" };
  if (sources.tokenFile) {
    const flag = sources.givenIn?.tokenFile === "env" ? "DROVER_TOKEN_FILE" : "--token-file";
    try {
      const token = readFileSync(sources.tokenFile, "utf8").trim();
      if (token) return { token, from: `in ${sources.tokenFile} (${flag})` };
    } catch (error) {
      throw new UsageError(`token file ${sources.tokenFile} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): check --token-file or DROVER_TOKEN_FILE`);
    }
    throw new UsageError(`token file ${sources.tokenFile} is empty: check --token-file or DROVER_TOKEN_FILE`);
  }
  try {
    const recorded = JSON.parse(readFileSync(credentialsFile(env), "utf8")) as { servers?: Record<string, { token?: string }> };
    const token = recorded.servers?.[server]?.token;
    return token ? { token, from: `recorded for ${server} in ${credentialsFile(env)} (by a server that ran on this address)` } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the server's host is this machine, where a token may travel without TLS. */
export function isLoopbackServer(server: string): boolean {
  const host = server.slice(0, server.lastIndexOf(":"));
  return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
