import type { IncomingHttpHeaders } from "node:http";

/**
 * What keeps web pages from using Drover's HTTP endpoints (the HTTP API and /metrics).
 *
 * A browser lets any page send some requests to any address, the user's loopback included:
 * a form POST or a `no-cors` fetch (no preflight, the response unread but the action done),
 * and, after DNS rebinding, any request at all to a name the attacker's DNS points at
 * 127.0.0.1, which the browser then treats as the page's own origin. Without a token nothing
 * else stands in the way. So:
 *
 * - `Host`, when `checkHost` is on (serving without a token): its name must be a loopback
 *   name (localhost, 127.x.y.z, [::1]) or the listen address's host. A rebinding page sends
 *   its own name; the port is not checked, so that a port forward (`ssh -L`) still works.
 *   With a token the Host is not checked: a rebinding page cannot know the token, and a
 *   server with a token is reached under names this server cannot know (DNS, proxies).
 * - `Origin`: absent (curl, scripts, Prometheus), or this server's own origin
 *   (`scheme://Host`). Anything else, `null` included, is a foreign page. No CORS headers are
 *   ever sent, so no preflight succeeds either.
 * - `Sec-Fetch-Site`: absent, `same-origin` or `none` (typed in the address bar). A
 *   `cross-site` or `same-site` request (another port of localhost is the same site) is a page's.
 *
 * Requests that change something must also say they are JSON (see the HTTP API's routes):
 * a page can only send `text/plain`, form types or none without a preflight. A DELETE needs
 * a preflight whatever it carries, so it needs no content type.
 */
export interface ForeignRequestRules {
  /** Whether the server speaks TLS: the scheme of its own origin. */
  tls: boolean;
  /** Check the Host header (serving without a token), allowing loopback names and this host. */
  checkHost?: { listenHost: string };
}

/** The one-line reason to refuse a request a web page made, or undefined for one to serve. */
export function foreignRequestProblem(headers: IncomingHttpHeaders, rules: ForeignRequestRules): string | undefined {
  const host = headers.host;
  if (rules.checkHost && host !== undefined && !isOwnHostName(hostName(host), rules.checkHost.listenHost)) {
    const names = [...new Set(["localhost", "127.0.0.1", "[::1]", rules.checkHost.listenHost.toLowerCase()])];
    return `Host ${JSON.stringify(host)} is not this server's address: served without a token, it answers only requests addressed to ${names.slice(0, -1).join(", ")} or ${names.at(-1)} (a foreign Host is what a DNS-rebinding web page sends)`;
  }
  const origin = headers.origin;
  if (origin !== undefined && !isOwnOrigin(origin, host, rules.tls)) {
    return `Origin ${JSON.stringify(origin)} is not this server's: it serves no web page of another origin (no CORS); call it from curl or a program, which send no Origin`;
  }
  const site = headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return `a ${site} request from a web page (Sec-Fetch-Site: ${site}) is refused: this server serves no web page of another origin; call it from curl or a program`;
  }
  return undefined;
}

/** A Host header's name, lower case, without its port, its IPv6 brackets' content kept bracketed, and without a final dot. */
function hostName(host: string): string {
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d*$/, "");
  return name.toLowerCase().replace(/\.$/, "");
}

function isOwnHostName(name: string, listenHost: string): boolean {
  return name === "localhost" || name === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name) || name === listenHost.toLowerCase();
}

function isOwnOrigin(origin: string, host: string | undefined, tls: boolean): boolean {
  if (host === undefined) return false;
  try {
    const presented = new URL(origin);
    const own = new URL(`${tls ? "https" : "http"}://${host}`);
    // URL normalizes case and drops a scheme's default port, on both sides alike.
    return presented.protocol === own.protocol && presented.host === own.host && presented.pathname === "/";
  } catch {
    return false;
  }
}

/** The host of a listen address (`127.0.0.1:8080` → `127.0.0.1`, `[::1]:80` → `[::1]`). */
export function listenHost(address: string): string {
  return address.slice(0, address.lastIndexOf(":"));
}
