import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatAge, formatCores, formatDuration, groupNameProblem, MAX_COUNT, readIdReference, referenceText, shortId, specProblems } from "../src/index.js";

const spec = { count: 3, version: 2, maxSurge: 0, maxUnavailable: 1 };

describe("the rules of a spec", () => {
  it("accepts a valid spec and the edges of every range", () => {
    assert.deepEqual(specProblems(spec), []);
    assert.deepEqual(specProblems({ ...spec, count: 0 }), []);
    assert.deepEqual(specProblems({ ...spec, count: MAX_COUNT }), []);
  });

  it("names the field, the value and the rule of each problem", () => {
    assert.deepEqual(specProblems({ ...spec, count: -1 }), ["count -1 is invalid: it must be an integer from 0 to 100000"]);
    assert.deepEqual(specProblems({ ...spec, count: 1.5 }), ["count 1.5 is invalid: it must be an integer from 0 to 100000"]);
    assert.deepEqual(specProblems({ ...spec, version: 0 }), ["version 0 is invalid: it must be an integer from 1 to 2147483647"]);
    assert.match(specProblems({ ...spec, maxSurge: 0, maxUnavailable: 0 })[0]!, /both 0/);
  });

  it("accepts DNS-label group names and refuses others", () => {
    for (const name of ["default", "web-1", "a", "x".repeat(63)]) assert.equal(groupNameProblem(name), undefined, name);
    for (const name of ["", "Web", "-web", "web-", "web_1", "x".repeat(64)]) assert.match(groupNameProblem(name)!, /is invalid/, name);
  });

  it("reads a graph or node as its whole id, a prefix of 4 characters or more, or the short form tables print", () => {
    assert.deepEqual(readIdReference("graph", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), { id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" });
    assert.deepEqual(readIdReference("graph", "01arz3ndektsv4rrffq69g5fav"), { id: "01ARZ3NDEKTSV4RRFFQ69G5FAV" });
    assert.deepEqual(readIdReference("node", "01arz3"), { prefix: "01ARZ3", suffix: "" });
    assert.deepEqual(readIdReference("node", "01ARZ3…5FAV"), { prefix: "01ARZ3", suffix: "5FAV" });
    assert.deepEqual(readIdReference("node", "01ARZ3...5fav"), { prefix: "01ARZ3", suffix: "5FAV" });
    assert.deepEqual(readIdReference("node", "01ARZ3…"), { prefix: "01ARZ3", suffix: "" });
    assert.deepEqual(readIdReference("graph", shortId("01ARZ3NDEKTSV4RRFFQ69G5FAV")), { prefix: "01ARZ3", suffix: "5FAV" });
    assert.equal(referenceText({ prefix: "01ARZ3", suffix: "5FAV" }), "01ARZ3…5FAV");
    assert.match((readIdReference("graph", "01A") as { problem: string }).problem, /^graph id "01A" is too short: give at least its first 4 characters/);
    for (const text of ["nope", "latest", "", "01ARZ3NDEKTSV4RRFFQ69G5FAV0", "01ARZ3NDEKTS…V4RRFFQ69G5FAV", "…5FAV", "01AR Z3", "01ARZ3..5FAV"]) {
      assert.match((readIdReference("node", text) as { problem: string }).problem, /^node id ".*" is (invalid|too short)/, text);
    }
  });
});

describe("formatting", () => {
  it("formats durations for people", () => {
    assert.equal(formatDuration(850), "850ms");
    assert.equal(formatDuration(9_800), "9.8s");
    assert.equal(formatDuration(192_000), "3m12s");
    assert.equal(formatDuration(7_500_000), "2h05m");
  });

  it("formats ages the way kubectl does", () => {
    assert.equal(formatAge(45_000), "45s");
    assert.equal(formatAge(12 * 60_000), "12m");
    assert.equal(formatAge(3 * 3_600_000), "3h");
    assert.equal(formatAge(5 * 86_400_000), "5d");
  });

  it("formats millicores as cores, exactly", () => {
    assert.equal(formatCores(1000), "1 core");
    assert.equal(formatCores(2500), "2.5 cores");
    assert.equal(formatCores(250), "0.25 cores");
    assert.equal(formatCores(1), "0.001 cores");
    assert.equal(formatCores(300), "0.3 cores");
    assert.equal(formatCores(0), "0 cores");
  });
});
