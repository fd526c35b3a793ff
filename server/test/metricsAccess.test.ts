import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startTestServer, temporaryDataDir } from "./support.js";
import { freePort, startServer } from "./processes.js";

const TOKEN = "metrics-test-token-0123456789abcdef";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A GET of /metrics on 127.0.0.1:port with exactly these headers, over HTTPS when `ca` is given. */
function scrape(port: number, headers: Record<string, string> = {}, ca?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = { host: "127.0.0.1", port, path: "/metrics", headers, agent: false as const };
    const request = (ca ? httpsRequest({ ...options, ca, servername: "localhost" }, respond) : httpRequest(options, respond));
    function respond(response: import("node:http").IncomingMessage) {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode!, headers: response.headers, text }));
    }
    request.on("error", reject);
    request.end();
  });
}

/** A self-signed certificate for localhost and 127.0.0.1, made here. */
function makeCertificate(dir: string): { cert: Buffer; key: Buffer; certFile: string; keyFile: string } {
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), certFile, keyFile };
}

describe("who may read /metrics", { timeout: 60_000 }, () => {
  it("serves metrics on a loopback address without a token, but not to a DNS-rebinding page or a foreign origin", async (t) => {
    const port = await freePort();
    const { stop } = await startTestServer({ server: { token: TOKEN, metricsListen: `127.0.0.1:${port}` } });
    t.after(stop);
    const local = await scrape(port, { host: `127.0.0.1:${port}` });
    assert.equal(local.status, 200);
    assert.match(local.text, /drover_rpcs_total|drover_nodes/);
    assert.equal((await scrape(port, { host: `localhost:${port}` })).status, 200);
    const rebound = await scrape(port, { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, "sec-fetch-site": "same-origin" });
    assert.equal(rebound.status, 403);
    assert.match(rebound.text, /^Host "evil\.example:\d+" is not this server's address/);
    assert.equal((await scrape(port, { host: `127.0.0.1:${port}`, origin: "https://evil.example", "sec-fetch-site": "cross-site" })).status, 403);
  });

  it("serves metrics off loopback only over TLS with the token as a bearer header, as Prometheus' credentials_file sends it", async (t) => {
    const dir = temporaryDataDir(t);
    const tls = makeCertificate(dir);
    const port = await freePort();
    // Every address of the host: not loopback, though the test reaches it through 127.0.0.1.
    const { stop } = await startTestServer({ server: { token: TOKEN, tls: { cert: tls.cert, key: tls.key }, metricsListen: `0.0.0.0:${port}` } });
    t.after(stop);
    const missing = await scrape(port, {}, tls.cert);
    assert.equal(missing.status, 401);
    assert.match(String(missing.headers["www-authenticate"]), /^Bearer/);
    assert.match(missing.text, /^missing token: off loopback, metrics need 'Authorization: Bearer <token>'/);
    assert.equal(missing.text.trim().split("\n").length, 1);
    assert.equal((await scrape(port, { authorization: "Bearer not-the-token" }, tls.cert)).status, 401);
    const scraped = await scrape(port, { authorization: `Bearer ${TOKEN}` }, tls.cert);
    assert.equal(scraped.status, 200);
    assert.match(scraped.text, /^# HELP drover_/m);
    // Plain HTTP gets no metrics (the TLS server does not answer it).
    await assert.rejects(scrape(port, { authorization: `Bearer ${TOKEN}` }));
  });

  it("refuses to start with metrics off loopback without a token or without TLS, in one line", async (t) => {
    const port = await freePort();
    const noAuth = await startServer(["--data-dir", temporaryDataDir(t), "--listen", "127.0.0.1:0", "--insecure-no-auth", "--metrics-listen", `0.0.0.0:${port}`]).exited;
    assert.equal(noAuth.code, 2);
    assert.match(noAuth.stderr, /^server: --metrics-listen 0\.0\.0\.0:\d+ is refused with --insecure-no-auth: off loopback, a scrape must carry the server's token, and there is none/);
    assert.equal(noAuth.stderr.trim().split("\n").length, 1);
    const plaintext = await startServer(["--data-dir", temporaryDataDir(t), "--listen", "127.0.0.1:0", "--metrics-listen", `0.0.0.0:${port}`]).exited;
    assert.equal(plaintext.code, 2);
    assert.match(plaintext.stderr, /^server: --metrics-listen 0\.0\.0\.0:\d+ needs --tls-cert and --tls-key: off loopback, a scrape carries the server's token/);
    assert.equal(plaintext.stderr.trim().split("\n").length, 1);
  });
});
