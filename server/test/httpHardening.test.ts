import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { drain, startTestServer, type TestServer } from "./support.js";

type Json = Record<string, any>;
const TOKEN = "hardening-test-token-0123456789";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json?: Json;
}

/**
 * One request to 127.0.0.1:port with exactly these headers, as a browser or curl sends them:
 * `host` may name anything (DNS rebinding), or be left out with `host: null`.
 */
function send(port: number, method: string, path: string, options: { headers?: Record<string, string | null>; body?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  let setHost = true;
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value === null) setHost = name !== "host";
    else headers[name] = value;
  }
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: "127.0.0.1", port, method, path, headers, setHost, agent: false }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode!, headers: response.headers, text, json: text.startsWith("{") ? (JSON.parse(text) as Json) : undefined }));
    });
    request.on("error", reject);
    request.end(options.body);
  });
}

/** What a raw TCP client gets back for these bytes (the server closes the connection after an error). */
function sendRaw(port: number, bytes: string): Promise<{ statusLine: string; json?: Json; headers: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const [head = "", body = ""] = text.split("\r\n\r\n");
      resolve({ statusLine: head.split("\r\n")[0]!, headers: head, json: body.startsWith("{") ? (JSON.parse(body) as Json) : undefined });
    });
  });
}

function assertApiError(answer: Answer | { json?: Json }, code: string, message?: RegExp): void {
  assert.ok(answer.json, `a JSON body: ${"text" in answer ? answer.text : ""}`);
  assert.deepEqual(Object.keys(answer.json), ["error"]);
  assert.deepEqual(Object.keys(answer.json.error), ["code", "message"]);
  assert.equal(answer.json.error.code, code);
  assert.equal(answer.json.error.message.split("\n").length, 1);
  if (message) assert.match(answer.json.error.message, message);
}

/** The headers Chrome sends when a page at `origin` submits a form with enctype text/plain here. */
const crossSiteForm = (origin: string) => ({
  origin,
  "content-type": "text/plain",
  "sec-fetch-site": "cross-site",
  "sec-fetch-mode": "navigate",
  "sec-fetch-dest": "document",
});

/** What `fetch(url, {method: "POST", mode: "no-cors"})` from a page at `origin` sends: no body, no content type. */
const noCorsFetch = (origin: string) => ({ origin, "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "empty", "content-length": "0" });

describe("the HTTP API served without a token (--insecure-no-auth) and web pages", { timeout: 60_000 }, () => {
  let s: TestServer;
  let port: number;
  const own = () => ({ host: `127.0.0.1:${port}` });

  before(async () => {
    s = await startTestServer({ driver: { latency: { min: 0, max: 2 } }, server: { httpListen: "127.0.0.1:0" } });
    port = s.server.httpPort;
    for (const version of [1, 2]) {
      const { graph } = await s.client.setSpec({ group: "web", count: 1, version });
      await drain(s.client.watchGraph({ graphId: graph!.id }));
    }
  });
  after(() => s.stop());

  const revisions = async () => (await s.client.listRevisions({ group: "web" })).revisions.length;

  it("refuses a body-less cross-origin POST that needs no preflight (a rollback from a foreign page), and runs nothing", async () => {
    const rollback = await send(port, "POST", "/v1/groups/web:rollback", { headers: { ...own(), ...noCorsFetch("https://evil.example") } });
    assert.equal(rollback.status, 403);
    assertApiError(rollback, "PERMISSION_DENIED", /^Origin "https:\/\/evil\.example" is not this server's: .*no CORS/);
    const form = await send(port, "POST", "/v1/groups/web:rollback", { headers: { ...own(), ...crossSiteForm("https://evil.example") }, body: "{}" });
    assert.equal(form.status, 403);
    // Another port of localhost is another origin (and the same site).
    const neighbour = await send(port, "POST", "/v1/groups/web:rollback", {
      headers: { ...own(), origin: "http://localhost:3000", "sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors", "content-length": "0" },
    });
    assert.equal(neighbour.status, 403);
    // A sandboxed frame or a file:// page sends Origin: null.
    assert.equal((await send(port, "POST", "/v1/groups/web:rollback", { headers: { ...own(), ...crossSiteForm("null") }, body: "{}" })).status, 403);
    // A cross-site request without Origin (a link, an <img>) is a page's too.
    const image = await send(port, "GET", "/v1/groups/web/nodes", { headers: { ...own(), "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image" } });
    assert.equal(image.status, 403);
    assertApiError(image, "PERMISSION_DENIED", /Sec-Fetch-Site: cross-site/);
    // A CORS preflight gets no CORS headers.
    const preflight = await send(port, "OPTIONS", "/v1/groups/web/spec", {
      headers: { ...own(), origin: "https://evil.example", "access-control-request-method": "PUT", "access-control-request-headers": "content-type", "sec-fetch-mode": "cors" },
    });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.headers["access-control-allow-origin"], undefined);
    assert.equal(await revisions(), 2, "no rollback ran");
  });

  it("refuses a DNS-rebinding page (its own name in Host, same-origin to the browser): it sets no template, no spec, and reads nothing", async () => {
    const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, "sec-fetch-site": "same-origin", "sec-fetch-mode": "cors", "content-type": "application/json" };
    const template = await send(port, "PUT", "/v1/groups/web/template", { headers: rebound, body: JSON.stringify({ command: "/bin/sh", args: ["-c", "touch /tmp/pwned"] }) });
    assert.equal(template.status, 403);
    assertApiError(template, "PERMISSION_DENIED", /^Host "evil\.example:\d+" is not this server's address: served without a token, it answers only requests addressed to localhost, 127\.0\.0\.1 or \[::1\] \(a foreign Host is what a DNS-rebinding web page sends\)$/);
    assert.equal((await send(port, "PUT", "/v1/groups/web/spec", { headers: rebound, body: '{"count": 5, "version": 9}' })).status, 403);
    assert.equal((await send(port, "GET", "/v1/groups/web/nodes", { headers: { host: `evil.example:${port}` } })).status, 403);
    // The name alone decides, whatever the port or the case.
    assert.equal((await send(port, "GET", "/v1/groups/web/nodes", { headers: { host: "Evil.Example" } })).status, 403);
    assert.equal((await s.client.getTemplate({ group: "web" })).isDefault, true);
    assert.equal(await revisions(), 2);
  });

  it("needs Content-Type: application/json on every PUT and POST, with a body or without: 415 otherwise, and nothing runs", async () => {
    // What curl sends for `curl -X POST …` and for `curl -d '{…}' …`.
    const bare = await send(port, "POST", "/v1/groups/web:rollback", { headers: own() });
    assert.equal(bare.status, 415);
    assertApiError(bare, "INVALID_ARGUMENT", /^POST \/v1\/groups\/web:rollback needs the header 'Content-Type: application\/json', also without a body/);
    const form = await send(port, "POST", "/v1/groups/web:rollback", { headers: { ...own(), "content-type": "application/x-www-form-urlencoded" }, body: "{}" });
    assert.equal(form.status, 415);
    assertApiError(form, "INVALID_ARGUMENT", /^content type "application\/x-www-form-urlencoded" is not accepted/);
    const text = await send(port, "PUT", "/v1/groups/web/spec", { headers: { ...own(), "content-type": "text/plain" }, body: '{"count": 3, "version": 3}' });
    assert.equal(text.status, 415);
    for (const verb of ["cancel", "pause", "resume", "promote"]) {
      assert.equal((await send(port, "POST", `/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV:${verb}`, { headers: own() })).status, 415, verb);
    }
    assert.equal((await send(port, "POST", "/v1/nodes/01ARZ3NDEKTSV4RRFFQ69G5FAV:kill", { headers: own() })).status, 415);
    assert.equal(await revisions(), 2);
  });

  it("serves curl and scripts: loopback names on any port (a port forward), no Origin or its own, JSON with a charset", async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, "localhost:9999", "127.0.0.2", "LOCALHOST."]) {
      assert.equal((await send(port, "GET", "/v1/groups/web/nodes", { headers: { host } })).status, 200, host);
    }
    const ownPage = await send(port, "GET", "/v1/groups/web/revisions", { headers: { ...own(), origin: `http://127.0.0.1:${port}`, "sec-fetch-site": "same-origin" } });
    assert.equal(ownPage.status, 200, ownPage.text);
    // Typed into the address bar.
    assert.equal((await send(port, "GET", "/v1/groups/web/revisions", { headers: { ...own(), "sec-fetch-site": "none", "sec-fetch-mode": "navigate" } })).status, 200);
    const dryRun = await send(port, "POST", "/v1/groups/web:rollback", { headers: { ...own(), "content-type": "application/json; charset=utf-8" }, body: '{"dryRun": true}' });
    assert.equal(dryRun.status, 200, dryRun.text);
    // HTTP/1.0 needs no Host; HTTP/1.1 does, and its absence gets the API's error shape.
    const old = await sendRaw(port, "GET /v1/groups/web/nodes HTTP/1.0\r\n\r\n");
    assert.match(old.statusLine, /^HTTP\/1\.1 200/);
    const noHost = await sendRaw(port, "GET /v1/groups/web/nodes HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert.match(noHost.statusLine, /^HTTP\/1\.1 400/);
    assertApiError(noHost, "INVALID_ARGUMENT", /no Host header/);
  });
});

describe("the HTTP API served with a token and web pages", { timeout: 60_000 }, () => {
  let s: TestServer;
  let port: number;
  before(async () => {
    s = await startTestServer({ server: { token: TOKEN, httpListen: "127.0.0.1:0" } });
    port = s.server.httpPort;
  });
  after(() => s.stop());
  const bearer = { authorization: `Bearer ${TOKEN}` };

  it("serves any Host with the token (a DNS name, a proxy), but refuses a foreign Origin or a cross-site request before looking at the token", async () => {
    // A read that always answers 200: no group exists on this server.
    assert.equal((await send(port, "GET", "/v1/groups", { headers: { host: `drover.example.com:${port}`, ...bearer } })).status, 200);
    const foreign = await send(port, "GET", "/v1/groups", { headers: { host: `127.0.0.1:${port}`, origin: "https://evil.example", ...bearer } });
    assert.equal(foreign.status, 403);
    assertApiError(foreign, "PERMISSION_DENIED", /^Origin "https:\/\/evil\.example"/);
    const withoutToken = await send(port, "POST", "/v1/groups/web:rollback", { headers: { host: `127.0.0.1:${port}`, ...crossSiteForm("https://evil.example") }, body: "{}" });
    assert.equal(withoutToken.status, 403);
    // Its own origin, under whatever name it was reached.
    const same = await send(port, "GET", "/v1/groups", { headers: { host: `drover.example.com:${port}`, origin: `http://drover.example.com:${port}`, "sec-fetch-site": "same-origin", ...bearer } });
    assert.equal(same.status, 200);
    // The token comes before the content type.
    assert.equal((await send(port, "POST", "/v1/groups/web:rollback", { headers: { host: `127.0.0.1:${port}` } })).status, 401);
    assert.equal((await send(port, "POST", "/v1/groups/web:rollback", { headers: { host: `127.0.0.1:${port}`, ...bearer } })).status, 415);
  });
});

describe("the HTTP API's answers to what fastify and Node refuse themselves", { timeout: 60_000 }, () => {
  let s: TestServer;
  let port: number;
  before(async () => {
    s = await startTestServer({ server: { httpListen: "127.0.0.1:0" } });
    port = s.server.httpPort;
  });
  after(() => s.stop());
  const json = (port: number) => ({ host: `127.0.0.1:${port}`, "content-type": "application/json" });

  it("answers a bad URL encoding, an overlong path part or URL, oversized headers or body, bad JSON and non-HTTP in the API's error shape", async () => {
    const badEncoding = await send(port, "GET", "/v1/groups/%zz/nodes");
    assert.equal(badEncoding.status, 400);
    assertApiError(badEncoding, "INVALID_ARGUMENT", /^the path \/v1\/groups\/%zz\/nodes is not valid URL encoding/);
    const longPart = await send(port, "GET", `/v1/groups/${"a".repeat(300)}/nodes`);
    assert.equal(longPart.status, 414);
    assertApiError(longPart, "INVALID_ARGUMENT", /has a part longer than 100 characters/);
    assert.ok(longPart.json!.error.message.length < 200, "the message quotes a short part of the path");
    const longUrl = await sendRaw(port, `GET /v1/groups/web/nodes?${"a".repeat(100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    assert.match(longUrl.statusLine, /^HTTP\/1\.1 414/);
    assertApiError(longUrl, "INVALID_ARGUMENT", /the URL is too long/);
    const bigHeaders = await sendRaw(port, `GET /v1/groups/web/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    assert.match(bigHeaders.statusLine, /^HTTP\/1\.1 431/);
    assertApiError(bigHeaders, "INVALID_ARGUMENT", /headers are too large/);
    const notHttp = await sendRaw(port, "HELLO WORLD\r\n\r\n");
    assert.match(notHttp.statusLine, /^HTTP\/1\.1 400/);
    assertApiError(notHttp, "INVALID_ARGUMENT", /^the request is not valid HTTP\/1\.1 \(HPE_INVALID_METHOD\)/);
    const badLength = await sendRaw(port, "PUT /v1/groups/web/spec HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: x\r\n\r\n{}");
    assert.match(badLength.statusLine, /^HTTP\/1\.1 400/);
    assertApiError(badLength, "INVALID_ARGUMENT");
    const tooLarge = await send(port, "PUT", "/v1/groups/web/spec", { headers: json(port), body: JSON.stringify({ count: 1, version: 1, pad: "x".repeat(1_100_000) }) });
    assert.equal(tooLarge.status, 413);
    assertApiError(tooLarge, "INVALID_ARGUMENT", /larger than 1 MiB/);
    const badJson = await send(port, "PUT", "/v1/groups/web/spec", { headers: json(port), body: '{"count": 1,' });
    assert.equal(badJson.status, 400);
    assertApiError(badJson, "INVALID_ARGUMENT", /not valid JSON/);
  });

  it("answers a wrong method on a known path with 405 and Allow, and an unknown path or custom method with 404", async () => {
    const cases: [string, string, string][] = [
      ["DELETE", "/v1/groups/web/spec", "GET, PUT"],
      ["PATCH", "/v1/groups/web/spec", "GET, PUT"],
      ["POST", "/v1/groups/web/template", "GET, PUT, PATCH"],
      ["HEAD", "/v1/groups/web/nodes", "GET"],
      ["GET", "/v1/groups/web:rollback", "POST"],
      ["PUT", "/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV:cancel", "POST"],
      ["DELETE", "/v1/nodes/01ARZ3NDEKTSV4RRFFQ69G5FAV", "GET"],
      ["POST", "/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV/events", "GET"],
    ];
    for (const [method, path, allow] of cases) {
      const answer = await send(port, method, path, { headers: json(port) });
      assert.equal(answer.status, 405, `${method} ${path}: ${answer.text}`);
      assert.equal(answer.headers.allow, allow, `${method} ${path}`);
      if (method !== "HEAD") assertApiError(answer, "UNIMPLEMENTED", new RegExp(`^method ${method} is not allowed on ${path.replace(/[/:]/g, "\\$&")}: it takes `));
    }
    const unknown = await send(port, "POST", "/v1/graphs/01ARZ3NDEKTSV4RRFFQ69G5FAV:explode", { headers: json(port) });
    assert.equal(unknown.status, 404);
    assertApiError(unknown, "NOT_FOUND", /^no route POST/);
    assert.equal((await send(port, "GET", "/v2/anything")).status, 404);
  });
});
