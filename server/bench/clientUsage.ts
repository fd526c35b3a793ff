/**
 * Preloaded into a client run by the benchmark (`NODE_OPTIONS=--import=<this file>`): as the
 * process exits it writes its peak resident memory (KiB) and CPU time (µs) as JSON to the file
 * DROVER_BENCH_USAGE_FILE names. The client is run as it is; this only reads what it cost.
 */
import { writeFileSync } from "node:fs";

const file = process.env.DROVER_BENCH_USAGE_FILE;
if (file) {
  process.on("exit", () => {
    const usage = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRssKib: usage.maxRSS, cpuMicroseconds: usage.userCPUTime + usage.systemCPUTime }));
  });
}
