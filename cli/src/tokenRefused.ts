import { ClientError, Status } from "nice-grpc";
import type { GlobalOptions } from "./connection.js";
import { credentialsFile } from "./credentials.js";
import { CliError, ExitCode } from "./errors.js";

/** How to pass the right token, the same words for a missing one and a wrong one. */
const HOW_TO_PASS = "its token is the file 'token' in its data dir: pass it with --token-file <data dir>/token (or set DROVER_TOKEN_FILE)";

/**
 * What to say when the server refuses the call for its token (UNAUTHENTICATED), once and in the
 * user's words: which token the client sent and where it found it (a flag, a variable, the
 * credentials file a local server records), or that it found none; then where the right token
 * is and how to pass it. Exit 4. Undefined for any other error.
 */
export function tokenRefused(error: unknown, globals: Pick<GlobalOptions, "server" | "token" | "tokenFrom">): CliError | undefined {
  if (!(error instanceof ClientError) || error.code !== Status.UNAUTHENTICATED) return undefined;
  const { server } = globals;
  const message = globals.token
    ? `wrong token: server ${server} refused the token ${globals.tokenFrom ?? "it was sent"}; ${HOW_TO_PASS}`
    : `missing token: server ${server} needs one, and none was given (--token-file, DROVER_TOKEN_FILE) or recorded for ${server} in ${credentialsFile()}; ${HOW_TO_PASS}`;
  return new CliError(ExitCode.notAllowed, message, { cause: error });
}
