import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";

/**
 * Enforces a node's memory limit with a cgroup of its own: cgroup v2's memory.max, or the
 * v1 memory controller's memory.limit_in_bytes, under a `drover` cgroup the server creates.
 * Where neither can be written (no permission, no memory controller), limits are only
 * reserved, not enforced, and the server says so once in its log.
 */
export class MemoryLimits {
  private readonly root: { dir: string; limitFile: string } | undefined;
  private warned = false;

  constructor(private readonly logger: Logger) {
    this.root = MemoryLimits.detect();
  }

  get enforced(): boolean {
    return this.root !== undefined;
  }

  /**
   * Creates the node's cgroup with its limit; returns the cgroup.procs file the node's
   * process must join, or undefined when limits cannot be enforced here.
   */
  prepare(nodeId: string, memoryMb: number): string | undefined {
    if (!this.root) {
      if (!this.warned) {
        this.warned = true;
        this.logger.warn("node memory limits are reserved but not enforced: no writable cgroup memory controller");
      }
      return undefined;
    }
    const dir = join(this.root.dir, nodeId);
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, this.root.limitFile), String(memoryMb * 1024 * 1024));
      return join(dir, "cgroup.procs");
    } catch (error) {
      this.logger.warn({ err: error, nodeId }, "could not set the node's memory limit; it runs without one");
      return undefined;
    }
  }

  /** Removes the node's cgroup once its processes are gone. */
  release(nodeId: string): void {
    if (!this.root) return;
    try {
      rmdirSync(join(this.root.dir, nodeId));
    } catch {
      // Never made, or already gone.
    }
  }

  private static detect(): { dir: string; limitFile: string } | undefined {
    const candidates = [
      { base: "/sys/fs/cgroup", limitFile: "memory.max", usable: (base: string) => controllers(base).includes("memory") },
      { base: "/sys/fs/cgroup/memory", limitFile: "memory.limit_in_bytes", usable: (base: string) => existsSync(join(base, "memory.limit_in_bytes")) },
    ];
    for (const { base, limitFile, usable } of candidates) {
      try {
        if (!usable(base)) continue;
        accessSync(base, constants.W_OK);
        const dir = join(base, "drover");
        mkdirSync(dir, { recursive: true });
        if (limitFile === "memory.max") writeFileSync(join(base, "cgroup.subtree_control"), "+memory");
        return { dir, limitFile };
      } catch {
        continue;
      }
    }
    return undefined;
  }
}

function controllers(base: string): string[] {
  try {
    return readFileSync(join(base, "cgroup.controllers"), "utf8").trim().split(/\s+/);
  } catch {
    return [];
  }
}
