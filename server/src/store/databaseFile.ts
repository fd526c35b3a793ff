import { accessSync, constants, existsSync } from "node:fs";
import { basename } from "node:path";
import type { Database } from "better-sqlite3";
import { StorageError } from "../errors.js";

/**
 * What the server checks of its database file before it trusts it: that it can write it,
 * and that it is intact. Every refusal is one line naming the file, the rule and what to do.
 */

/** The files SQLite keeps beside the database in WAL mode; they are part of it. */
export function companionFiles(path: string): string[] {
  return [`${path}-wal`, `${path}-shm`];
}

/** What to do about a database that cannot be trusted: a backup, and never a stale WAL beside it. */
function restoreAdvice(path: string): string {
  const name = basename(path);
  return `restore ${name} from a backup (and remove ${name}-wal and ${name}-shm beside it)`;
}

/** Refuses a database (or its WAL or SHM file) this user cannot write, before SQLite opens it read-only and every write fails. */
export function assertWritable(path: string): void {
  for (const file of [path, ...companionFiles(path)]) {
    if (!existsSync(file)) continue;
    try {
      accessSync(file, constants.W_OK);
    } catch (cause) {
      throw readOnlyError(file, (cause as NodeJS.ErrnoException).code, cause);
    }
  }
}

/** The refusal of a database that cannot be written, by why: a read-only mount, or the file's permissions. */
export function readOnlyError(file: string, code: string | undefined, cause?: unknown): StorageError {
  if (code === "EROFS") {
    return new StorageError(`database ${file} is on a read-only file system: remount it read-write, or move the data dir to a writable one`, { cause });
  }
  const uid = process.getuid?.() ?? "?";
  return new StorageError(
    `database ${file} is read-only for this server's user (uid ${uid}): make it writable (chmod 600 ${file}), or run the server as the file's owner`,
    { cause },
  );
}

/**
 * Runs `PRAGMA quick_check` (it reads every page once, which --skip-integrity-check spares a
 * huge database) and refuses a database that fails it, before anything is written into it.
 */
export function assertIntact(db: Database, path: string): void {
  let problems: string[];
  try {
    problems = db.prepare("PRAGMA quick_check(5)").pluck().all() as string[];
  } catch (cause) {
    // Damage SQLite cannot read past; anything else (not a database at all, an I/O error) is the caller's to name.
    if (!((cause as { code?: string }).code ?? "").startsWith("SQLITE_CORRUPT")) throw cause;
    throw corruptError(path, (cause as Error).message, cause);
  }
  if (problems.length === 1 && problems[0] === "ok") return;
  const more = problems.length > 1 ? ` and ${problems.length - 1} more` : "";
  throw corruptError(path, `${problems[0]}${more}`);
}

export function corruptError(path: string, reason: string, cause?: unknown): StorageError {
  return new StorageError(
    `database ${path} is corrupt (${reason}): ${restoreAdvice(path)}; do not start afresh, a new database would not know the nodes that run`,
    { cause },
  );
}

export function notADatabaseError(path: string, reason: string, cause?: unknown): StorageError {
  return new StorageError(`database ${path} is not a SQLite database (${reason}): ${restoreAdvice(path)}, or point --data-dir at Drover's data dir`, {
    cause,
  });
}

export function foreignDatabaseError(path: string, reason: string, cause?: unknown): StorageError {
  return new StorageError(`database ${path} is not Drover's: ${reason}; point --data-dir at Drover's data dir (Drover never migrates another program's database)`, {
    cause,
  });
}
