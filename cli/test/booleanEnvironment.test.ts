import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertOneLineError, runClient, startServer, type TestServer } from "./harness.js";

/** Issue 11, item 13: a boolean flag's variable is read strictly; commander alone took any value, "false" too, for true. */
describe("booleans from the environment", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.close();
  });

  test("reads DROVER_TLS=false, 0 and empty as off: a plaintext server answers", async () => {
    for (const value of ["false", "0", "", "False"]) {
      const result = await server.client(["groups", "ls"], { DROVER_TLS: value });
      assert.equal(result.code, 0, `DROVER_TLS=${JSON.stringify(value)}: ${result.stderr}`);
    }
  });

  test("refuses DROVER_TLS that is not 1, true, 0, false or empty, with exit code 2 and one line", async () => {
    for (const value of ["yes", "no", "2"]) {
      const result = await runClient(["--server", server.address, "nodes", "ls"], { DROVER_TLS: value });
      assertOneLineError(result, 2, `DROVER_TLS="${value}" is not a boolean (it sets --tls): use 1 or true, 0 or false, or leave it empty`);
    }
  });
});
