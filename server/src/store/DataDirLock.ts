import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import DatabaseConstructor, { type Database } from "better-sqlite3";
import { StorageError } from "../errors.js";

export const LOCK_FILE = "drover.lock";
export const PID_FILE = "drover.pid";

/** How long a refused server waits for the holder to write its pid, when it won the lock a moment ago. */
const HOLDER_PID_WAIT_MS = 1000;

/** Locks held by this process: a lock's connection must not be garbage-collected, which would close it and drop the lock. */
const held = new Set<DataDirLock>();

/**
 * One server per data dir. The lock is a POSIX record lock (fcntl) on `drover.lock`, which
 * the kernel drops when the holding process dies, however it dies: a SIGKILLed server leaves
 * no stale lock to judge by its pid, and of two servers starting at once exactly one wins.
 * Node has no flock; SQLite takes such a lock for a connection in exclusive locking mode and
 * keeps it until the connection closes, so better-sqlite3 (already ours) holds it for us.
 * The holder writes its pid to `drover.pid`, for the refusal of the next server to name.
 */
export class DataDirLock {
  private constructor(
    private readonly connection: Database,
    private readonly pidFile: string,
  ) {}

  /** Takes the data dir's lock, or throws a StorageError naming the pid that holds it. */
  static acquire(dataDir: string): DataDirLock {
    const path = join(dataDir, LOCK_FILE);
    const pidFile = join(dataDir, PID_FILE);
    let connection: Database | undefined;
    try {
      // Made here, not by SQLite, so that it is private like every file of the data dir.
      closeSync(openSync(path, "a", 0o600));
      connection = new DatabaseConstructor(path, { timeout: 0 });
      connection.pragma("locking_mode = EXCLUSIVE");
      // Nothing is written to it: no journal file beside it.
      connection.pragma("journal_mode = MEMORY");
      connection.exec("BEGIN EXCLUSIVE; COMMIT");
    } catch (cause) {
      connection?.close();
      if ((cause as { code?: string }).code === "SQLITE_BUSY") {
        const pid = holderPid(pidFile);
        const holder = pid === undefined ? "another process (its pid is not in drover.pid yet)" : `pid ${pid}`;
        throw new StorageError(`data dir ${dataDir} is in use by ${holder}: stop that server first, or give this one another --data-dir`, { cause });
      }
      throw new StorageError(
        `lock file ${path} cannot be used (${(cause as Error).message}): stop any server on data dir ${dataDir}, then remove the file`,
        { cause },
      );
    }
    const temporary = `${pidFile}.tmp`;
    writeFileSync(temporary, `${process.pid}\n`, { mode: 0o600 });
    renameSync(temporary, pidFile);
    const lock = new DataDirLock(connection, pidFile);
    held.add(lock);
    process.once("exit", () => lock.release());
    return lock;
  }

  /** Drops the lock (the kernel does as much when the process exits) and removes the pid file. */
  release(): void {
    if (!held.delete(this)) return;
    if (readPid(this.pidFile) === process.pid) rmSync(this.pidFile, { force: true });
    this.connection.close();
  }
}

/** The live pid in the pid file, waiting a moment for a holder that has just won the lock to write it. */
function holderPid(pidFile: string): number | undefined {
  const deadline = Date.now() + HOLDER_PID_WAIT_MS;
  for (;;) {
    const pid = readPid(pidFile);
    if (pid !== undefined && isRunning(pid)) return pid;
    if (Date.now() >= deadline) return undefined;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(pidFile, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
