import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

/**
 * The README promises Node.js 20; npm warns EBADENGINE at install for every locked package
 * whose `engines.node` leaves out the Node.js that installs it (cookie 2, through fastify's
 * light-my-request, asked for Node.js 22). So every package in the lock file must admit the
 * oldest Node.js that the root package.json admits.
 */

const lock = JSON.parse(readFileSync(new URL("../../../package-lock.json", import.meta.url), "utf8")) as {
  packages: Record<string, { engines?: { node?: string }; optional?: boolean }>;
};
const root = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { engines: { node: string } };

type Version = [number, number, number];

const compare = (a: Version, b: Version): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/**
 * Whether `version` satisfies a semver range of the kinds package.json files use for engines
 * (`>=20`, `^18 || >=20`, `20.x || 22.x`, `>= 10.x`, `*`); throws on any other kind, so that
 * a new one is added here rather than passed unchecked.
 */
function satisfies(version: Version, range: string): boolean {
  return range.split("||").some((clause) => {
    const comparators = clause.trim().replace(/([<>]=?|\^|~|=)\s+/g, "$1").split(/\s+/).filter(Boolean);
    return comparators.every((comparator) => {
      if (comparator === "*" || comparator === "x") return true;
      const match = /^(>=|<=|>|<|\^|~|=)?v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(comparator);
      if (!match) throw new Error(`engines range ${JSON.stringify(range)}: comparator ${JSON.stringify(comparator)} is not understood here`);
      const [, operator = "", major, minor, patch] = match;
      const wild = (part: string | undefined) => part === undefined || part === "x" || part === "*";
      const bound: Version = [Number(major), wild(minor) ? 0 : Number(minor), wild(patch) ? 0 : Number(patch)];
      const order = compare(version, bound);
      switch (operator) {
        case ">=":
          return order >= 0;
        case ">":
          return order > 0;
        case "<":
          return order < 0;
        case "<=":
          return order <= 0;
        case "^":
          return order >= 0 && (bound[0] > 0 ? version[0] === bound[0] : version[0] === 0 && version[1] === bound[1]);
        case "~":
          return order >= 0 && version[0] === bound[0] && (wild(minor) || version[1] === bound[1]);
        default:
          // `20`, `20.x`, `20.1.*`: every version that starts so.
          return version[0] === bound[0] && (wild(minor) || version[1] === bound[1]) && (wild(patch) || version[2] === bound[2]);
      }
    });
  });
}

describe("installing on the Node.js the README promises", () => {
  it("reads the kinds of range package.json files use", () => {
    assert.equal(satisfies([20, 0, 0], ">=20"), true);
    assert.equal(satisfies([20, 0, 0], ">=22"), false);
    assert.equal(satisfies([20, 0, 0], "^16 || ^18 || >=20"), true);
    assert.equal(satisfies([20, 0, 0], "^18"), false);
    assert.equal(satisfies([20, 0, 0], "20.x || 22.x"), true);
    assert.equal(satisfies([20, 0, 0], "10.* || >= 12.*"), true);
    assert.equal(satisfies([20, 0, 0], ">= 10.x"), true);
    assert.equal(satisfies([20, 0, 0], "*"), true);
    assert.throws(() => satisfies([20, 0, 0], "node20"), /not understood/);
  });

  it("locks no package whose engines leave out the oldest Node.js the root package.json admits (no EBADENGINE at install)", () => {
    const oldest = /^>=\s*(\d+)$/.exec(root.engines.node);
    assert.ok(oldest, `root engines ${root.engines.node}: expected a ">=N" range`);
    const node: Version = [Number(oldest[1]), 0, 0];
    const refused = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== "" && entry.engines?.node !== undefined && !satisfies(node, entry.engines.node))
      .map(([path, entry]) => `${path.replace(/^.*node_modules\//, "")} requires node ${entry.engines!.node}`);
    assert.deepEqual(refused, [], `these would warn EBADENGINE on Node.js ${node.join(".")}: pin versions that support it (package.json overrides)`);
  });
});
