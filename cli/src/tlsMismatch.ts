import { isIP } from "node:net";
import { connect } from "node:tls";
import { ClientError, Status } from "nice-grpc";
import type { GlobalOptions } from "./connection.js";
import { CliError, ExitCode, TRANSPORT_FAILURE } from "./errors.js";

/** How long the handshake of the probe below may take: it runs only after a connection failed. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * What to say instead of "unreachable" when a server that cannot be reached is in fact
 * running and the client spoke the wrong protocol to it: plaintext to a TLS server (grpc-js
 * only says "Failed to connect", so a TLS handshake is tried to find out), TLS to a plaintext
 * one, or TLS to a server whose certificate is not trusted. Undefined when it is none of these.
 * Each is a usage error (exit 2): retrying will not help, a flag will.
 */
export async function tlsMismatch(error: unknown, globals: Pick<GlobalOptions, "server" | "tls">): Promise<CliError | undefined> {
  if (!(error instanceof ClientError) || error.code !== Status.UNAVAILABLE) return undefined;
  const { server } = globals;
  if (globals.tls) {
    if (/wrong version number|packet length too long|http request/i.test(error.details)) {
      return new CliError(ExitCode.usage, `server ${server} does not speak TLS: drop --tls and --tls-ca (and DROVER_TLS, DROVER_TLS_CA), or check --server`, { cause: error });
    }
    const untrusted = /(self[- ]signed certificate[^:.\n]*|unable to (?:verify|get local issuer)[^:.\n]*|certificate has expired)/i.exec(error.details)?.[1];
    if (untrusted) {
      return new CliError(ExitCode.usage, `server ${server}'s certificate is not trusted (${untrusted}): pass --tls-ca with the certificate of the CA that signed it`, { cause: error });
    }
    return undefined;
  }
  // The server's own UNAVAILABLE (its database cannot be written) came over a working connection.
  if (!TRANSPORT_FAILURE.test(error.details) && !/failed to connect/i.test(error.details)) return undefined;
  if (await speaksTls(server)) {
    return new CliError(ExitCode.usage, `server ${server} speaks TLS and this client spoke plaintext: pass --tls-ca FILE (the CA certificate that signed the server's, PEM) or --tls (trust the system's CAs)`, {
      cause: error,
    });
  }
  return undefined;
}

/** Whether a TLS handshake with host:port completes (whoever signed its certificate). */
function speaksTls(server: string): Promise<boolean> {
  const separator = server.lastIndexOf(":");
  const host = server.slice(0, separator).replace(/^\[|\]$/g, "");
  return new Promise((resolve) => {
    const socket = connect({
      host,
      port: Number(server.slice(separator + 1)),
      ...(isIP(host) === 0 && { servername: host }),
      // Only asking whether it speaks TLS: nothing is sent, so nothing needs the certificate trusted.
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
      timeout: PROBE_TIMEOUT_MS,
    });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.once("secureConnect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}
