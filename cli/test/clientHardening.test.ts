import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { freePort, runClient, SERVER_BIN, startServer, type TestServer } from "./harness.js";

const lines = (text: string) => text.split("\n").filter((line) => line !== "");

describe("the client's token on the command line", () => {
  test("--token warns that every user sees it in ps, and the help says to prefer the token file", async () => {
    const port = await freePort();
    const flagged = await runClient(["--server", `127.0.0.1:${port}`, "--token", "secret-0123456789", "nodes", "ls"]);
    assert.equal(flagged.code, 3, flagged.stderr);
    assert.deepEqual(lines(flagged.stderr)[0], "client: warning: --token shows in the process list (ps) to every user of this machine: use --token-file or DROVER_TOKEN_FILE instead");
    assert.match(lines(flagged.stderr)[1]!, /^client: server 127\.0\.0\.1:\d+ is unreachable/);
    // From the environment it shows to no other user: no warning.
    const fromEnv = await runClient(["--server", `127.0.0.1:${port}`, "nodes", "ls"], { DROVER_TOKEN: "secret-0123456789" });
    assert.equal(lines(fromEnv.stderr).length, 1, fromEnv.stderr);
    const help = await runClient(["--help"]);
    assert.match(help.stdout.replace(/\s+/g, " "), /--token <token> the server's token; other users see it in ps: prefer --token-file/);
  });
});

describe("the client speaking the wrong protocol to a running server", () => {
  let dir: string;
  let cert: string;
  let tlsPort: number;
  let tlsServer: ChildProcess;
  let plain: TestServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "drover-cli-tls-"));
    cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
    tlsPort = await freePort();
    tlsServer = spawn(SERVER_BIN, ["--data-dir", join(dir, "data"), "--listen", `127.0.0.1:${tlsPort}`, "--tls-cert", cert, "--tls-key", key], {
      stdio: "ignore",
      env: { ...process.env, XDG_CONFIG_HOME: join(dir, "config") },
    });
    // Ready once a client that trusts the certificate gets an answer.
    for (let attempt = 0; ; attempt++) {
      const ready = await runClient(["--server", `localhost:${tlsPort}`, "--tls-ca", cert, "--token-file", join(dir, "data", "token"), "groups", "ls"]);
      if (ready.code === 0) break;
      if (attempt === 100) throw new Error(`the TLS server did not answer: ${ready.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    plain = await startServer();
  });
  after(async () => {
    tlsServer?.kill("SIGKILL");
    await plain?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("plaintext to a TLS server says the server speaks TLS and which flag to pass, with exit 2, not 'unreachable'", async () => {
    const result = await runClient(["--server", `127.0.0.1:${tlsPort}`, "--token-file", join(dir, "data", "token"), "nodes", "ls"]);
    assert.equal(result.code, 2, result.stderr);
    assert.deepEqual(lines(result.stderr), [
      `client: server 127.0.0.1:${tlsPort} speaks TLS and this client spoke plaintext: pass --tls-ca FILE (the CA certificate that signed the server's, PEM) or --tls (trust the system's CAs)`,
    ]);
    // A command that follows a stream says the same.
    const watch = await runClient(["--server", `127.0.0.1:${tlsPort}`, "--token-file", join(dir, "data", "token"), "tasks", "watch"]);
    assert.equal(watch.code, 2, watch.stderr);
    assert.match(watch.stderr, /speaks TLS and this client spoke plaintext/);
  });

  test("TLS to a plaintext server says it does not speak TLS, and an untrusted certificate says so", async () => {
    const toPlain = await plain.client(["--tls-ca", cert, "nodes", "ls"]);
    assert.equal(toPlain.code, 2, toPlain.stderr);
    assert.match(lines(toPlain.stderr).at(-1)!, /^client: server 127\.0\.0\.1:\d+ does not speak TLS: drop --tls and --tls-ca/);
    const untrusted = await runClient(["--server", `localhost:${tlsPort}`, "--tls", "--token-file", join(dir, "data", "token"), "nodes", "ls"]);
    assert.equal(untrusted.code, 2, untrusted.stderr);
    assert.deepEqual(lines(untrusted.stderr), [
      `client: server localhost:${tlsPort}'s certificate is not trusted (self-signed certificate): pass --tls-ca with the certificate of the CA that signed it`,
    ]);
  });

  test("a server that is not running is still 'unreachable', exit 3", async () => {
    const port = await freePort();
    for (const tls of [[], ["--tls-ca", cert]]) {
      const result = await runClient(["--server", `localhost:${port}`, ...tls, "nodes", "ls"]);
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /is unreachable \(ECONNREFUSED\)/);
    }
  });
});
