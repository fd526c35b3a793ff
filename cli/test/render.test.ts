/** The building blocks of the client's tables, checked without a server. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { table } from "../src/render.js";
import { alignedColumns } from "../src/render/columns.js";
import { idRangesCell, idRangesText } from "../src/render/ranges.js";

/** Expands what idRangesText wrote back into ids. */
function parseRanges(text: string): number[] {
  if (text === "-") return [];
  return text.split(",").flatMap((part) => {
    const match = /^(\d+)-(\d+)(?:\/(\d+))?$/.exec(part);
    if (!match) return [Number(part)];
    const [from, to, step] = [Number(match[1]), Number(match[2]), Number(match[3] ?? 1)];
    const ids: number[] = [];
    for (let id = from; id <= to; id += step) ids.push(id);
    return ids;
  });
}

describe("task ids as ranges", () => {
  test("runs of four or more become ranges, evenly spaced ones in step notation, the rest stay as they are", () => {
    assert.equal(idRangesText([]), "-");
    assert.equal(idRangesText([5]), "5");
    assert.equal(idRangesText([0, 1, 2]), "0,1,2");
    assert.equal(idRangesText(Array.from({ length: 27 }, (_, i) => i)), "0-26");
    assert.equal(idRangesText([0, 1, 2, 3, 7, 9, 10, 11, 12]), "0-3,7,9-12");
    assert.equal(idRangesText(Array.from({ length: 200 }, (_, i) => 201 + 2 * i)), "201-599/2");
    assert.equal(idRangesText([12, 3, 2, 1, 0, 3]), "0-3,12", "unsorted, with a repeat");
  });

  test("ranges always stand for exactly the ids given", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 200 }), (ids) => {
        const expected = [...new Set(ids)].sort((a, b) => a - b);
        assert.deepEqual(parseRanges(idRangesText(ids)), expected);
      }),
    );
  });

  test("a cell of ranges is cut at a comma and says how many ids there are", () => {
    const squares = Array.from({ length: 40 }, (_, i) => i * i);
    const cell = idRangesCell(squares, 24);
    assert.ok(cell.length <= 24, cell);
    assert.match(cell, /^0,1,4,9,.*,…\(40 ids\)$/);
    assert.equal(idRangesCell([0, 1, 2, 3], 24), "0-3");
  });
});

describe("aligned columns", () => {
  const plain = { color: false };
  const word = fc.stringMatching(/^[a-z0-9 …×=-]{0,12}$/);
  const coloured = fc.stringMatching(/^[a-z]{1,9}$/).map((text) => `\x1b[32m${text}\x1b[0m`);
  const cell = fc.oneof({ weight: 6, arbitrary: word }, { weight: 1, arbitrary: coloured }, { weight: 1, arbitrary: fc.tuple(word, word).map(([a, b]) => `${a}\n${b}`) });

  test("lay a table out exactly as cli-table3 does (for ASCII, colours and cells of several lines)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }).chain((columns) =>
          fc.tuple(
            fc.oneof(fc.constant([] as string[]), fc.array(fc.stringMatching(/^[A-Z]{1,8}$/), { minLength: columns, maxLength: columns })),
            fc.array(fc.array(cell, { minLength: columns, maxLength: columns }), { maxLength: 20 }),
          ),
        ),
        ([head, rows]) => {
          assert.equal(alignedColumns(head, rows), table(plain, head, rows));
        },
      ),
    );
  });

  test("a table longer than cli-table3 is given is laid out the same way", () => {
    const rows = Array.from({ length: 1000 }, (_, i) => [String(i), i % 7 === 0 ? "0-3,7" : "-", "start_node version=2"]);
    const lines = table(plain, ["ID", "PREREQS", "ACTION"], rows).split("\n");
    assert.equal(lines.length, 1001);
    assert.equal(lines[0], "ID    PREREQS   ACTION");
    assert.equal(lines[1], "0     0-3,7     start_node version=2");
    assert.equal(lines[1000], "999   -         start_node version=2");
  });
});
