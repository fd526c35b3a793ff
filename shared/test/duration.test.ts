import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { durationText, readDuration } from "../src/index.js";

describe("the one duration grammar of the server's flags and the client's", () => {
  it("reads single units, fractions, days and compound durations largest unit first", () => {
    const cases: [string, number][] = [
      ["0", 0],
      ["0s", 0],
      ["500ms", 500],
      ["90s", 90_000],
      ["1.5m", 90_000],
      ["1h30m", 5_400_000],
      ["2m30.5s", 150_500],
      ["1m1500ms", 61_500],
      ["7d", 604_800_000],
      ["1d12h", 129_600_000],
      ["168h", 604_800_000],
      ["1h0m5s", 3_605_000],
    ];
    for (const [text, milliseconds] of cases) assert.deepEqual(readDuration(text), { milliseconds }, text);
  });

  it("refuses a bare number, an unknown unit, units out of order or twice, and less than a millisecond, saying how to write it", () => {
    const cases: [string, RegExp][] = [
      ["30", /^a number needs a unit \(ms, s, m, h or d\): write it like 500ms, 90s, 1h30m or 7d$/],
      ["1w", /^write it like 500ms, 90s, 1h30m or 7d$/],
      ["", /write it like/],
      [" 5s", /write it like/],
      ["5s ", /write it like/],
      ["-5s", /write it like/],
      ["5S", /write it like/],
      ["1e3ms", /write it like/],
      ["30m1h", /^its units must come largest first, each once/],
      ["1m1m", /^its units must come largest first, each once/],
      ["1.0005s", /^it must come to whole milliseconds/],
      ["0.5ms", /^it must come to whole milliseconds/],
    ];
    for (const [text, problem] of cases) assert.match(readDuration(text).problem ?? "(read)", problem, JSON.stringify(text));
  });

  it("writes every duration so that it reads back exactly, in the largest units that fit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 * 86_400_000 }), (milliseconds) => {
        assert.deepEqual(readDuration(durationText(milliseconds)), { milliseconds });
      }),
    );
    const cases: [number, string][] = [
      [0, "0s"],
      [400, "400ms"],
      [1500, "1500ms"],
      [10_000, "10s"],
      [90_000, "1m30s"],
      [120_000, "2m"],
      [3_600_000, "1h"],
      [5_400_000, "1h30m"],
      [86_400_000, "1d"],
      [604_800_000, "7d"],
      [61_500, "1m1500ms"],
    ];
    for (const [milliseconds, text] of cases) assert.equal(durationText(milliseconds), text, String(milliseconds));
  });
});
