import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyBooleanEnvironment, parseBooleanSetting } from "../src/index.js";

/** An option as commander shapes it, for what applyBooleanEnvironment reads and writes. */
function option(flags: string, envVar: string, isBoolean = true) {
  return { flags, envVar: envVar as string | undefined, isBoolean: () => isBoolean, attributeName: () => flags.replace(/^--/, "") };
}

describe("booleans from the environment", () => {
  it("reads 1/true as true and 0/false/empty as false, in any case, and nothing else", () => {
    const table: [string, boolean | undefined][] = [
      ["1", true],
      ["true", true],
      ["TRUE", true],
      [" True ", true],
      ["0", false],
      ["false", false],
      ["False", false],
      ["", false],
      ["yes", undefined],
      ["no", undefined],
      ["on", undefined],
      ["2", undefined],
      ["falsey", undefined],
    ];
    for (const [value, expected] of table) assert.equal(parseBooleanSetting(value), expected, JSON.stringify(value));
  });

  it("detaches a false variable from its option, keeps a true one, and leaves options that take a value alone", () => {
    const off = option("--insecure-no-auth", "DROVER_INSECURE_NO_AUTH");
    const on = option("--tls", "DROVER_TLS");
    const unset = option("--stop-unknown-processes", "DROVER_STOP_UNKNOWN_PROCESSES");
    const valued = option("--listen <host:port>", "DROVER_LISTEN", false);
    const sub = option("--follow", "DROVER_FOLLOW");
    const command = { options: [off, on, unset, valued], commands: [{ options: [sub], commands: [] }] };
    applyBooleanEnvironment(command, { DROVER_INSECURE_NO_AUTH: "false", DROVER_TLS: "1", DROVER_LISTEN: "whatever", DROVER_FOLLOW: "0" });
    assert.equal(off.envVar, undefined);
    assert.equal(on.envVar, "DROVER_TLS");
    assert.equal(unset.envVar, "DROVER_STOP_UNKNOWN_PROCESSES");
    assert.equal(valued.envVar, "DROVER_LISTEN");
    assert.equal(sub.envVar, undefined, "subcommands' options too");
  });

  it("refuses a value that is not a boolean with one line naming the variable, the flag and the rule", () => {
    const command = { options: [option("--insecure-no-auth", "DROVER_INSECURE_NO_AUTH")], commands: [] };
    assert.throws(
      () => applyBooleanEnvironment(command, { DROVER_INSECURE_NO_AUTH: "yes" }),
      { message: 'DROVER_INSECURE_NO_AUTH="yes" is not a boolean (it sets --insecure-no-auth): use 1 or true, 0 or false, or leave it empty' },
    );
  });
});
