import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { meaningfulLogLine } from "../src/drivers/logLines.js";

const NODE_CRASH = `listening on 20001
node:internal/modules/cjs/loader:1228
  throw err;
  ^

Error: Cannot find module '/srv/app/server.mjs'
    at Module._resolveFilename (node:internal/modules/cjs/loader:1225:15)
    at node:internal/main/run_main_module:28:49 {
  code: 'MODULE_NOT_FOUND',
  requireStack: []
}

Node.js v20.20.2
`;

describe("the line a crashed node's log is quoted by", () => {
  const cases: [string, string, boolean, string | undefined][] = [
    ["a Node.js crash: its error line, not the version banner or a stack frame", NODE_CRASH, false, "Error: Cannot find module '/srv/app/server.mjs'"],
    ["a shell that cannot find the command", "starting\nsh: 1: ./api: not found\n", false, "sh: 1: ./api: not found"],
    ["a program's own fatal line, before a goodbye", "fatal: cannot open the widget socket\nbye\n", false, "fatal: cannot open the widget socket"],
    ["a log with no error: its last line", "ready\nserving on 20002\n", false, "serving on 20002"],
    ["a log with no error, for a process killed by a signal: nothing", "ready\npeer connected\n", true, undefined],
    ["an empty log", "", false, undefined],
  ];
  for (const [name, text, errorsOnly, expected] of cases) {
    it(name, () => assert.equal(meaningfulLogLine(text, errorsOnly), expected));
  }
});
