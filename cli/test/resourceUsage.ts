/**
 * Preloaded into a client run (`NODE_OPTIONS=--import=<this file>`): as the process exits it
 * writes its peak resident memory, in KiB, as JSON to the file RESOURCE_USAGE_FILE names. The
 * client's own code is left as it is; a test reads what the whole run cost.
 */
import { writeFileSync } from "node:fs";

const file = process.env.RESOURCE_USAGE_FILE;
if (file) {
  process.on("exit", () => {
    const usage = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRssKib: usage.maxRSS, cpuMicroseconds: usage.userCPUTime + usage.systemCPUTime }));
  });
}
