/**
 * A node's log as records with the time each piece of output arrived (logRecords.ts), and the
 * reads `nodes logs` makes of it (readLog.ts): the last N lines, the lines since a time, the
 * times before the lines, across pieces of a line and rotated files.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type LogStart, readLog } from "../src/api/readLog.js";
import { encodeOutput, outputText, parseRecord } from "../src/drivers/logRecords.js";
import { RotatingLog } from "../src/drivers/RotatingLog.js";
import { drain, temporaryDataDir } from "./support.js";

const T0 = Date.parse("2025-01-02T03:04:00.000Z");
const at = (seconds: number) => T0 + seconds * 1000;
const iso = (seconds: number) => new Date(at(seconds)).toISOString();

/** A log written as a node's is: each chunk framed with the time it arrived, through a rotating file. */
function nodeLog(path: string, maxBytes = 1024 * 1024) {
  const log = new RotatingLog(path, { maxBytes, maxFiles: 5 }, (error) => assert.fail(error));
  return {
    write: (text: string, seconds: number) => log.append(encodeOutput(Buffer.from(text), at(seconds))),
    writeRaw: (text: string) => log.append(Buffer.from(text)),
    close: () => log.close(),
  };
}

async function read(path: string, start: LogStart, timestamps = false): Promise<string> {
  const pieces = await drain(readLog(path, { start, follow: false, timestamps, signal: new AbortController().signal, ended: async () => true }));
  return pieces.join("");
}

describe("node log records", () => {
  it("keeps each chunk of output as records with the time it arrived: full lines, a piece with no newline yet, and pieces of a long line", () => {
    const records = encodeOutput(Buffer.from("one\n\ntwo\nthr"), at(1)).toString().split("\n").slice(0, -1);
    assert.deepEqual(records, [`${iso(1)} F one`, `${iso(1)} F `, `${iso(1)} F two`, `${iso(1)} P thr`]);
    const long = encodeOutput(Buffer.from(`${"x".repeat(25)}\n`), at(2), 10).toString().split("\n").slice(0, -1);
    assert.deepEqual(long, [`${iso(2)} P ${"x".repeat(10)}`, `${iso(2)} P ${"x".repeat(10)}`, `${iso(2)} F ${"x".repeat(5)}`]);
    assert.deepEqual(parseRecord(Buffer.from(`${iso(3)} P a b`)), { time: at(3), partial: true, text: Buffer.from("a b") });
    assert.deepEqual(parseRecord(Buffer.from("plain output")), { time: undefined, partial: false, text: Buffer.from("plain output") }, "a line from before times were kept");
    const both = Buffer.concat([encodeOutput(Buffer.from("ab"), at(1)), encodeOutput(Buffer.from("c\nd\n"), at(2))]);
    assert.equal(outputText(both), "abc\nd\n", "the output as the node wrote it");
  });

  it("reads the last N lines, the lines since a time, or both, each line whole across its pieces and the rotated files", async (t) => {
    const path = join(temporaryDataDir(t), "node.log");
    const log = nodeLog(path, 200);
    for (let i = 0; i < 8; i++) log.write(`line ${i}\n`, i);
    log.write("part", 8.5);
    log.write("ial\n", 9);
    log.write("line 10\n", 10);
    log.write("line 11 goes", 11);
    log.close();
    const all = ["line 0", "line 1", "line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "partial", "line 10", "line 11 goes"];
    assert.ok(readFileSync(`${path}.2`).length > 0, "the log has rotated twice");
    assert.equal(await read(path, {}), `${all.join("\n")}`, "the whole log; the last line is still being written");
    assert.equal(await read(path, { lines: 3 }), "partial\nline 10\nline 11 goes");
    assert.equal(await read(path, { lines: 1 }), "line 11 goes");
    assert.equal(await read(path, { lines: 0 }), "");
    assert.equal(await read(path, { lines: 100 }), all.join("\n"));
    assert.equal(await read(path, { since: at(8.5) }), "partial\nline 10\nline 11 goes", "a line's time is its first piece's");
    assert.equal(await read(path, { since: at(8.7) }), "line 10\nline 11 goes", "a line begun before is left out whole");
    assert.equal(await read(path, { since: at(2), lines: 2 }), "line 10\nline 11 goes", "both limits hold");
    assert.equal(await read(path, { since: at(9.5), lines: 5 }), "line 10\nline 11 goes");
    assert.equal(await read(path, { since: at(99) }), "");
    assert.equal(await read(path, { bytes: 12 }), "line 11 goes");
    assert.equal(await read(path, { bytes: 13 }), "line 10\nline 11 goes", "the line holding the 13th byte from the end is whole");
  });

  it("puts each line's time before it once, however many pieces it came in, and prints a line kept without a time as it is; --since leaves that out", async (t) => {
    const path = join(temporaryDataDir(t), "node.log");
    const log = nodeLog(path);
    log.writeRaw("written by an earlier server\n");
    log.write("a", 1);
    log.write("b\nc\n", 2);
    log.close();
    assert.equal(await read(path, {}, true), `written by an earlier server\n${iso(1)} ab\n${iso(2)} c\n`);
    assert.equal(await read(path, { lines: 2 }), "ab\nc\n");
    assert.equal(await read(path, { since: 0 }), "ab\nc\n", "a line of unknown time is older than any");
    assert.equal(await read(path, { lines: 5 }), "written by an earlier server\nab\nc\n");
  });

  it("follows a log, a line that arrives in pieces getting its time once", async (t) => {
    const path = join(temporaryDataDir(t), "node.log");
    const log = nodeLog(path);
    log.write("first\n", 1);
    let writing = true;
    const following = (async () => {
      const seen: string[] = [];
      for await (const text of readLog(path, { start: { lines: 0 }, follow: true, timestamps: true, signal: new AbortController().signal, ended: async () => !writing })) seen.push(text);
      return seen.join("");
    })();
    await sleep(300);
    log.write("slo", 2);
    await sleep(300);
    log.write("w\n", 3);
    writing = false;
    assert.equal(await following, `${iso(2)} slow\n`);
    log.close();
  });
});
