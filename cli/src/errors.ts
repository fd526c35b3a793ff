import { ClientError, Status } from "nice-grpc";

/**
 * Exit codes, the same for every command:
 *
 *   0  success
 *   1  the operation ran and failed: the graph failed, was cancelled or was superseded;
 *      a refused precondition (FAILED_PRECONDITION): a cancel, pause or resume of a graph
 *      that had already settled, an update or rollback whose --expect-revision is stale,
 *      a rollback with no earlier revision, a node operation on a node that is not live, logs
 *      of a node the driver keeps none of; a spec the host cannot hold (RESOURCE_EXHAUSTED
 *      from a call: a watch stream ended with it is resumed instead, see isResumable);
 *      any other server-side failure (INTERNAL, ABORTED, …)
 *   2  bad usage or an invalid argument: an unknown command or option, a malformed value,
 *      or INVALID_ARGUMENT / OUT_OF_RANGE from the server; a running server spoken to in
 *      the wrong protocol (plaintext to TLS, TLS to plaintext, an untrusted certificate: see
 *      tlsMismatch.ts)
 *   3  the server is unreachable or unavailable (UNAVAILABLE, DEADLINE_EXCEEDED, no answer
 *      within the deadline, or a broken watch stream that could not be resumed in time), or
 *      what --server names answers but is not Drover's gRPC API (see notDrover.ts)
 *   4  not authenticated or not allowed (UNAUTHENTICATED, PERMISSION_DENIED)
 *   5  not found (NOT_FOUND: no such group (never updated, or deleted), graph, revision or node,
 *      or a group without graphs or revisions)
 *
 * Every error is one line on stderr, prefixed `client: `.
 */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  unavailable: 3,
  notAllowed: 4,
  notFound: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error the client reports as it is, with the exit code it implies. */
export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad usage or an invalid argument, found before anything was called. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(ExitCode.usage, message);
  }
}

/** A unary call got no answer within its deadline. */
export class DeadlineError extends CliError {
  constructor(server: string, milliseconds: number, options?: { cause?: unknown }) {
    super(
      ExitCode.unavailable,
      `server ${server} did not answer within ${Math.round(milliseconds / 1000)}s: is it overloaded or stuck? (check its log, or pass --server)`,
      options,
    );
  }
}

/** The exit code a gRPC status implies. */
export function exitCodeForStatus(code: Status): ExitCode {
  switch (code) {
    case Status.INVALID_ARGUMENT:
    case Status.OUT_OF_RANGE:
      return ExitCode.usage;
    case Status.UNAVAILABLE:
    case Status.DEADLINE_EXCEEDED:
      return ExitCode.unavailable;
    case Status.UNAUTHENTICATED:
    case Status.PERMISSION_DENIED:
      return ExitCode.notAllowed;
    case Status.NOT_FOUND:
      return ExitCode.notFound;
    default:
      return ExitCode.failed;
  }
}

/** Whether a broken watch stream is worth resuming: the server went away or cut a slow watcher off. */
export function isResumable(error: unknown): boolean {
  if (!(error instanceof ClientError)) return false;
  return (
    error.code === Status.UNAVAILABLE ||
    error.code === Status.RESOURCE_EXHAUSTED ||
    // grpc-js reports a connection torn down mid-stream (RST_STREAM, GOAWAY) this way.
    (error.code === Status.INTERNAL && /RST_STREAM|GOAWAY|stream removed|Protocol error/i.test(error.details))
  );
}

/** Flattens text to one line, so that every error stays one line on stderr. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

/** The one-line message and exit code for anything a command threw. */
export function describeError(error: unknown, server: string): { exitCode: ExitCode; message: string } {
  if (error instanceof CliError) return { exitCode: error.exitCode, message: oneLine(error.message) };
  if (error instanceof ClientError) {
    const exitCode = exitCodeForStatus(error.code);
    if (error.code === Status.UNAVAILABLE) {
      // The server's own refusal (its database cannot be written) says why; a transport failure does not.
      if (error.details && !TRANSPORT_FAILURE.test(error.details)) {
        return { exitCode, message: `server ${server} is unavailable: ${oneLine(error.details)}` };
      }
      return { exitCode, message: unreachableMessage(server, error.details) };
    }
    if (error.code === Status.DEADLINE_EXCEEDED) {
      return { exitCode, message: `server ${server} did not answer in time: ${oneLine(error.details)}` };
    }
    return { exitCode, message: oneLine(error.details) || `the server answered ${Status[error.code]}` };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { exitCode: ExitCode.failed, message: `unexpected error: ${oneLine(message)}` };
}

/** The message for a server that cannot be reached, with the cause grpc-js gives, when it is short. */
/** The details grpc-js gives an UNAVAILABLE it made itself: no connection, a dropped one, a name that does not resolve. */
export const TRANSPORT_FAILURE =
  /No connection established|Connection dropped|connection closed|failed to connect|Name resolution|ECONN|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|RST_STREAM|GOAWAY|Received HTTP status|shutting down/i;

export function unreachableMessage(server: string, details: string): string {
  const cause = /(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|ECONNRESET|EAI_AGAIN|shutting down)/.exec(details)?.[1];
  const because = cause === "shutting down" ? " (it is shutting down)" : cause ? ` (${cause})` : "";
  return `server ${server} is unreachable${because}: is it running? (start it with make run, or pass --server)`;
}
