/**
 * End-to-end tests of the paper cuts an operator hits in the first hour (issue 12): help and
 * stray arguments, colours, hints that keep the global options, a --server that is not
 * Drover's gRPC port, token messages, the age of stopped nodes, and shell completion. The real
 * client against a real server with the mock driver.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createServer as createHttp2Server } from "node:http2";
import { Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import { assertExit, assertOneLineError, CLIENT_BIN, FAST_SERVER_FLAGS, freePort, json, runClient, startServer, type TestServer } from "./harness.js";

/** Whether util-linux's script(1), which gives a command a terminal, is here. */
const hasScript = (() => {
  try {
    execFileSync("script", ["-qec", "true", "/dev/null"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** Runs the client with a terminal for its stdout (through script(1)), and returns what it wrote there. */
function clientOnTerminal(server: TestServer, args: string[]): Promise<string> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("DROVER_") && name !== "NO_COLOR"));
  const command = [CLIENT_BIN, "--server", server.address, ...args].join(" ");
  return new Promise((resolve, reject) => {
    execFile(
      "script",
      ["-qec", command, "/dev/null"],
      { env: { ...inherited, TERM: "xterm", XDG_CONFIG_HOME: join(server.dataDir, "config") }, timeout: 60_000 },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    );
  });
}

describe("the client's paper cuts, against a server with the mock driver", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer(FAST_SERVER_FLAGS);
  });
  after(async () => {
    await server?.close();
  });

  describe("help and stray arguments", () => {
    test("client alone and client help print the help on stdout and exit 0, as --help does", async () => {
      const help = await runClient(["--help"]);
      assertExit(help, 0);
      for (const args of [[], ["help"], ["--group", "web"]]) {
        const result = await runClient(args);
        assertExit(result, 0);
        assert.equal(result.stdout, help.stdout, `client ${args.join(" ")}`);
        assert.equal(result.stderr, "");
      }
      const nodesLs = await runClient(["help", "nodes", "ls"]);
      assertExit(nodesLs, 0);
      assert.equal(nodesLs.stdout, (await runClient(["nodes", "ls", "--help"])).stdout);
      assertOneLineError(await runClient(["help", "nodes", "lss"]), 2, "unknown command 'nodes lss'", "did you mean 'nodes ls'");
    });

    test("a stray argument is a usage error on every command, and update 3 2 extra applies nothing", async () => {
      const extra = await server.client(["--group", "stray", "update", "3", "2", "extra"]);
      assertOneLineError(extra, 2, 'unexpected argument "extra"', "update takes <count> <version>", "client update --help");
      // Nothing was stored: the group was never made.
      assertOneLineError(await server.client(["--group", "stray", "history"]), 5, "group stray does not exist");
      const cases = [
        ["nodes", "ls", "x"],
        ["nodes", "logs", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x"],
        ["tasks", "watch", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x"],
        ["graphs", "promote", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x"],
        ["graphs", "cancel", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "x", "y"],
        ["history", "x"],
        ["rollback", "1", "x"],
        ["group", "show", "x"],
      ];
      for (const args of cases) {
        const result = await server.client(args);
        assertOneLineError(result, 2, `unexpected argument "x"`, `client ${args.filter((word) => /^[a-z]/.test(word) && word !== "x" && word !== "y").join(" ")} --help`);
      }
    });
  });

  describe("colour", () => {
    test("on a terminal a running node is green and a succeeded graph green; through a pipe nothing is coloured", { skip: !hasScript && "needs script(1)" }, async () => {
      assertExit(await server.client(["--group", "colours", "update", "2", "1"]), 0);
      const nodes = await clientOnTerminal(server, ["--group", "colours", "nodes", "ls"]);
      assert.equal(nodes.match(/\x1b\[32mrunning\x1b\[0m/g)?.length, 2, `both running nodes are green: ${JSON.stringify(nodes)}`);
      assert.ok(!nodes.includes("\x1b[33m"), "nothing is yellow: no work is under way");
      const graphs = await clientOnTerminal(server, ["--group", "colours", "graphs", "ls"]);
      assert.match(graphs, /\x1b\[32msucceeded\x1b\[0m/);
      for (const args of [["nodes", "ls"], ["graphs", "ls"]]) {
        const piped = await server.client(["--group", "colours", ...args]);
        assert.ok(!piped.stdout.includes("\x1b["), `no escape codes through a pipe: ${JSON.stringify(piped.stdout)}`);
      }
    });
  });

  describe("hints", () => {
    test("the client's own hints and the server's repeat the global options given on the command line, not those from DROVER_* variables", async () => {
      const at = `client --server ${server.address}`;
      const detached = await server.client(["--group", "hints", "update", "2", "1", "--detach"]);
      assertExit(detached, 0);
      assert.match(detached.stdout, new RegExp(`started; watch it with: ${at} --group hints tasks watch [0-9A-Z]{26}$`, "m"));
      const missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
      assertOneLineError(await server.client(["--group", "hints", "nodes", "describe", missing]), 5, `list nodes with '${at} --group hints nodes ls --all'`);
      assertOneLineError(await server.client(["nodes", "describe", missing], { DROVER_GROUP: "hints" }), 5, `list nodes with '${at} nodes ls --all'`);
      assertOneLineError(await server.client(["--group", "hints", "-o", "json", "history", "--revision", "9"]), 5, `list them with '${at} --group hints -o json history'`);
      const [node] = (await json(server, ["--group", "hints", "nodes", "ls"])).nodes as { id: string }[];
      const killed = await server.client(["--group", "hints", "nodes", "kill", node!.id]);
      assertExit(killed, 0);
      assert.ok(killed.stdout.includes(`(watch with: ${at} --group hints nodes ls -w)`), killed.stdout);
    });
  });

  describe("ages", () => {
    test("a stopped node's updatedAt, which nodes ls --all counts its AGE from, is when it stopped, not when it started", async () => {
      assertExit(await server.client(["--group", "ages", "update", "1", "1"]), 0);
      const scaledDown = Date.now();
      assertExit(await server.client(["--group", "ages", "update", "0", "1"]), 0);
      const [node] = (await json(server, ["--group", "ages", "nodes", "ls", "--all"])).nodes as { state: string; createdAt: string; updatedAt: string }[];
      assert.equal(node!.state, "NODE_STATE_STOPPED");
      assert.ok(Date.parse(node!.createdAt) < scaledDown, "it started before the scale-down");
      assert.ok(Date.parse(node!.updatedAt) >= scaledDown, `it stopped after the scale-down began: ${node!.updatedAt}`);
    });
  });

  describe("token messages", () => {
    const HOW = "its token is the file 'token' in its data dir: pass it with --token-file <data dir>/token (or set DROVER_TOKEN_FILE)";

    test("a wrong token is named by where the client found it, and how to pass the right one is said once", async () => {
      const elsewhere = join(server.dataDir, "elsewhere");
      const stale = join(server.dataDir, "stale");
      mkdirSync(join(stale, "drover"), { recursive: true });
      writeFileSync(join(stale, "drover", "credentials.json"), JSON.stringify({ servers: { [server.address]: { token: "from-an-earlier-server" } } }));
      const wrongFile = join(server.dataDir, "wrong-token");
      writeFileSync(wrongFile, "not-the-token\n");
      const cases: { args: string[]; env: Record<string, string>; from: string }[] = [
        { args: [], env: { DROVER_TOKEN: "nope" }, from: "from DROVER_TOKEN" },
        { args: ["--token-file", wrongFile], env: { XDG_CONFIG_HOME: elsewhere }, from: `in ${wrongFile} (--token-file)` },
        { args: [], env: { DROVER_TOKEN_FILE: wrongFile, XDG_CONFIG_HOME: elsewhere }, from: `in ${wrongFile} (DROVER_TOKEN_FILE)` },
        { args: [], env: { XDG_CONFIG_HOME: stale }, from: `recorded for ${server.address} in ${join(stale, "drover", "credentials.json")}` },
      ];
      for (const { args, env, from } of cases) {
        const result = await server.client([...args, "nodes", "ls"], env);
        assertOneLineError(result, 4, `wrong token: server ${server.address} refused the token ${from}`);
        assert.equal(result.stderr.split(HOW).length, 2, `says once how to pass it: ${result.stderr}`);
        assert.ok(!/data dir.*data dir.*data dir/.test(result.stderr), `no repetition: ${result.stderr}`);
      }
      const missing = await server.client(["nodes", "ls"], { XDG_CONFIG_HOME: elsewhere });
      assertOneLineError(missing, 4, `missing token: server ${server.address} needs one, and none was given`, join(elsewhere, "drover", "credentials.json"), HOW);
      assert.ok(!missing.stderr.includes("metadata"), `the server's own words for gRPC programs are not repeated: ${missing.stderr}`);
    });
  });
});

describe("a --server that is not Drover's gRPC port", () => {
  let server: TestServer;
  let httpPort: number;
  const closers: (() => void)[] = [];
  before(async () => {
    httpPort = await freePort();
    server = await startServer([...FAST_SERVER_FLAGS, "--http-listen", `127.0.0.1:${httpPort}`]);
  });
  after(async () => {
    for (const close of closers) close();
    await server?.close();
  });

  test("Drover's own HTTP port: the client says it speaks HTTP/1.1, not gRPC, and exits 3", async () => {
    for (const args of [["nodes", "ls"], ["tasks", "watch"], ["update", "1", "1"]]) {
      const result = await server.client(["--server", `127.0.0.1:${httpPort}`, ...args]);
      assertOneLineError(result, 3, `server 127.0.0.1:${httpPort} speaks HTTP/1.1, not gRPC`, "--http-listen", "--listen");
    }
  });

  test("an HTTP/2 server that answers 404 and a gRPC server without Drover's service are named as such, exit 3", async () => {
    const http2Port = await freePort();
    const plain = createHttp2Server((_request, response) => {
      response.writeHead(404, { "content-type": "text/html" });
      response.end("no such page");
    });
    await new Promise<void>((resolve) => plain.listen(http2Port, "127.0.0.1", resolve));
    closers.push(() => plain.close());
    assertOneLineError(await runClient(["--server", `127.0.0.1:${http2Port}`, "nodes", "ls"]), 3, "answered HTTP status 404, not gRPC");

    const grpc = new GrpcServer();
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpc.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
    );
    closers.push(() => grpc.forceShutdown());
    assertOneLineError(await runClient(["--server", `127.0.0.1:${grpcPort}`, "nodes", "ls"]), 3, "does not implement drover.v1.DroverService/ListNodes");
  });
});

describe("shell completion", () => {
  const has = (shell: string) => {
    try {
      execFileSync(shell, ["-c", "true"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };

  /** What bash offers for the words of a command line, the last one being written: the script's completion function, run in a subshell. */
  function bashOffers(script: string, words: string[]): string[] {
    const line = words.map((word) => `'${word}'`).join(" ");
    const offered = execFileSync(
      "bash",
      ["-c", `source "$1"; COMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _client_completion; printf '%s\\n' "\${COMPREPLY[@]}"`, "bash", script],
      { encoding: "utf8" },
    );
    return offered.split("\n").filter((word) => word !== "");
  }

  test("client completion bash prints a script bash accepts; completing 'client gr' offers graphs, group and groups, and so on down the tree", { skip: !has("bash") && "needs bash" }, async (t) => {
    const result = await runClient(["completion", "bash"]);
    assertExit(result, 0);
    const script = join(mkdtempSync(join(tmpdir(), "drover-completion-")), "client.bash");
    t.after(() => rmSync(dirname(script), { recursive: true, force: true }));
    writeFileSync(script, result.stdout);
    execFileSync("bash", ["-n", script]);
    assert.match(execFileSync("bash", ["-c", 'source "$1"; complete -p client', "bash", script], { encoding: "utf8" }), /^complete -F _client_completion client$/m);
    assert.deepEqual(bashOffers(script, ["client", "gr"]), ["group", "groups", "graphs"]);
    assert.deepEqual(bashOffers(script, ["client", "--group", "web", "nodes", "l"]), ["ls", "logs"], "a global option's value is not a command");
    assert.deepEqual(bashOffers(script, ["client", "nodes", "logs", "--ti"]), ["--timestamps"]);
    assert.deepEqual(bashOffers(script, ["client", "-o", ""]), ["table", "json"]);
    assert.deepEqual(bashOffers(script, ["client", "graphs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--format", "m"]), ["mermaid"]);
    assert.deepEqual(bashOffers(script, ["client", "help", "graphs", "p"]), ["promote", "pause"]);
    assert.deepEqual(bashOffers(script, ["client", "completion", ""]), ["bash", "zsh"]);
    assert.ok(bashOffers(script, ["client", "update", "3", "2", "--"]).includes("--max-surge"));
    assert.ok(bashOffers(script, ["client", "update", "3", "2", "--"]).includes("--server"), "the global options too");
  });

  test("client completion zsh prints a script zsh accepts, which registers itself for client", { skip: !has("zsh") && "needs zsh" }, async () => {
    const result = await runClient(["completion", "zsh"]);
    assertExit(result, 0);
    assert.match(result.stdout, /^#compdef client\n/);
    const offered = execFileSync("zsh", ["-c", 'compdef() { print "compdef $*"; }; eval "$1"; _client_walk --group web graphs; _client_candidates p graphs', "zsh", result.stdout], { encoding: "utf8" });
    assert.deepEqual(offered.trim().split(/\s+/), ["compdef", "_client", "client", "ls", "show", "cancel", "promote", "pause", "resume"]);
  });

  test("client completion of another shell is a usage error naming the two", async () => {
    assertOneLineError(await runClient(["completion", "fish"]), 2, 'shell "fish" is invalid: use bash or zsh');
  });
});

