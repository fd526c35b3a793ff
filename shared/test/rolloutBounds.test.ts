import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIntOrPercent, resolveRolloutBounds, specProblems } from "../src/index.js";

describe("max surge and max unavailable as percents of count", () => {
  it("resolves them as Kubernetes does: surge rounds up, unavailability down, and never both 0", () => {
    const cases = [
      // count, max surge, max unavailable → surge, unavailable
      [10, "25%", "25%", 3, 2],
      [4, "25%", "25%", 1, 1],
      [3, "25%", "25%", 1, 0],
      [3, "0%", "25%", 0, 1],
      [3, 0, "25%", 0, 1],
      [0, "25%", "25%", 0, 1],
      [100_000, "100%", "100%", 100_000, 100_000],
      [7, "1%", "99%", 1, 6],
      [5, 2, 1, 2, 1],
      [5, 2, "0%", 2, 0],
    ] as const;
    for (const [count, maxSurge, maxUnavailable, surge, unavailable] of cases) {
      assert.deepEqual(
        resolveRolloutBounds({ count, maxSurge, maxUnavailable }),
        { maxSurge: surge, maxUnavailable: unavailable },
        `count ${count}, max surge ${maxSurge}, max unavailable ${maxUnavailable}`,
      );
    }
  });

  it("refuses a percent that is not whole or outside 0% to 100%, and both bounds given as 0 in any form", () => {
    const spec = { count: 4, version: 1 };
    assert.deepEqual(specProblems({ ...spec, maxSurge: "25%", maxUnavailable: "100%" }), []);
    assert.deepEqual(specProblems({ ...spec, maxSurge: "101%", maxUnavailable: 1 }), [
      "max surge 101% is invalid: a percent must be a whole number from 0% to 100%",
    ]);
    assert.deepEqual(specProblems({ ...spec, maxSurge: 0, maxUnavailable: "2.5%" }), [
      "max unavailable 2.5% is invalid: a percent must be a whole number from 0% to 100%",
    ]);
    for (const [maxSurge, maxUnavailable] of [["0%", "0%"], [0, "0%"], ["0%", 0]] as const) {
      assert.match(specProblems({ ...spec, maxSurge, maxUnavailable }).join(), /both 0/, `${maxSurge}, ${maxUnavailable}`);
    }
  });

  it("reads a command line's value: a percent with %, else a number of nodes", () => {
    assert.equal(parseIntOrPercent("25%"), "25%");
    assert.equal(parseIntOrPercent("3"), 3);
    assert.ok(Number.isNaN(parseIntOrPercent("25 %")));
    assert.ok(Number.isNaN(parseIntOrPercent("-1")));
  });
});
