import { DEFAULT_GROUP, DroverServiceDefinition, type DroverServiceClient, groupNameProblem } from "@drover/shared";
import { readFileSync } from "node:fs";
import { ChannelCredentials } from "@grpc/grpc-js";
import { type Channel, createChannel, createClient, Metadata } from "nice-grpc";
import { isLoopbackServer, resolveToken, type TokenSources } from "./credentials.js";
import { DeadlineError, UsageError } from "./errors.js";

export const DEFAULT_SERVER = "127.0.0.1:8888";
/** How long a unary call may take before the client gives up on the server. */
export const UNARY_DEADLINE_MS = 10_000;
/**
 * The deadline of calls that wait for running tasks to finish: SetSpec superseding a running
 * graph, and CancelGraph. A task's attempt can take as long as the driver's start or stop.
 */
export const WAITING_DEADLINE_MS = 60_000;
/** How long a connection attempt may take (nice-grpc's patched grpc-js honours this option). */
const CONNECT_TIMEOUT_MS = 5_000;

export type OutputFormat = "table" | "json";

/** The options every command takes, as commander hands them over (strings, unvalidated). */
export interface RawGlobalOptions {
  server?: string;
  group?: string;
  output?: string;
  token?: string;
  tokenFile?: string;
  tls?: boolean;
  tlsCa?: string;
  /** Where --token and --token-file were given, for messages about the token (see resolveToken). */
  givenIn?: TokenSources["givenIn"];
}

export interface GlobalOptions {
  server: string;
  group: string;
  output: OutputFormat;
  /** The bearer token to send, if any. */
  token?: string;
  /** Where the token came from, in the user's words, to follow "the token" (`from DROVER_TOKEN`; see ResolvedToken). */
  tokenFrom?: string;
  /** Connect with TLS: `ca` is the PEM to trust, or undefined for the system's roots. */
  tls?: { ca?: Buffer };
}

const SERVER_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Checks and completes the global options; throws a UsageError naming the bad one. */
export function resolveGlobalOptions(raw: RawGlobalOptions): GlobalOptions {
  const server = raw.server ?? DEFAULT_SERVER;
  const port = SERVER_ADDRESS.exec(server)?.[2];
  if (port === undefined || Number(port) > 65535) {
    throw new UsageError(`server ${JSON.stringify(server)} is invalid: write it as host:port, like ${DEFAULT_SERVER}`);
  }
  const group = raw.group ?? DEFAULT_GROUP;
  const problem = groupNameProblem(group);
  if (problem) throw new UsageError(problem);
  const output = raw.output ?? "table";
  if (output !== "table" && output !== "json") {
    throw new UsageError(`output ${JSON.stringify(output)} is invalid: use table or json`);
  }
  let tls: { ca?: Buffer } | undefined;
  if (raw.tlsCa) {
    try {
      tls = { ca: readFileSync(raw.tlsCa) };
    } catch (error) {
      throw new UsageError(`--tls-ca ${raw.tlsCa} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): name a PEM file`);
    }
  } else if (raw.tls) {
    tls = {};
  }
  const resolved = resolveToken(server, { token: raw.token, tokenFile: raw.tokenFile, givenIn: raw.givenIn });
  if (resolved !== undefined && !tls && !isLoopbackServer(server)) {
    throw new UsageError(
      `refusing to send the token in plaintext to ${server}: use --tls (or --tls-ca FILE), or reach the server on a loopback address`,
    );
  }
  return { server, group, output, token: resolved?.token, tokenFrom: resolved?.from, tls };
}

/** A client of one server; close it when done so that the process can exit. */
export interface Connection {
  readonly server: string;
  readonly client: DroverServiceClient;
  /** Runs a unary call with a deadline (UNARY_DEADLINE_MS unless given), turning a timeout into a DeadlineError. */
  call<T>(run: (options: { signal: AbortSignal }) => Promise<T>, deadlineMs?: number): Promise<T>;
  close(): void;
}

/** The largest response the client accepts. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

export function connect(globals: Pick<GlobalOptions, "server" | "token" | "tls">): Connection {
  const { server } = globals;
  const credentials = globals.tls ? ChannelCredentials.createSsl(globals.tls.ca ?? null) : undefined;
  const channel: Channel = createChannel(server, credentials, {
    "grpc.min_reconnect_backoff_ms": CONNECT_TIMEOUT_MS,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1_000,
    // A 100,000-node group's node list or a 200,000-task graph is larger than gRPC's default 4 MB.
    "grpc.max_receive_message_length": MAX_RESPONSE_BYTES,
  });
  const metadata = globals.token ? Metadata({ authorization: `Bearer ${globals.token}` }) : undefined;
  const client = createClient(DroverServiceDefinition, channel, metadata ? { "*": { metadata } } : {});
  return {
    server,
    client,
    async call<T>(run: (options: { signal: AbortSignal }) => Promise<T>, deadlineMs = UNARY_DEADLINE_MS): Promise<T> {
      const options = { signal: AbortSignal.timeout(deadlineMs) };
      try {
        return await run(options);
      } catch (error) {
        if (options.signal.aborted) throw new DeadlineError(server, deadlineMs, { cause: error });
        throw error;
      }
    },
    close: () => channel.close(),
  };
}
