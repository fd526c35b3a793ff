import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { basename } from "node:path";
import type { Database } from "better-sqlite3";
import { StorageError } from "../errors.js";

/**
 * What the server checks of its database file before it trusts it: that it can write it,
 * that it is intact, and that a blank one is not silently put in the place of a lost one.
 * Every refusal is one line naming the file, the rule and what to do.
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

/** Missing, or a file of 0 bytes: what `truncate -s 0` or a lost file leaves. */
export function isBlank(path: string): boolean {
  return !existsSync(path) || statSync(path).size === 0;
}

/** Whether the database holds no table at all (SQLite's own aside). */
export function hasNoTables(db: Database): boolean {
  return db.prepare("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'").pluck().get() === 0;
}

/**
 * Refuses a blank database in a data dir that shows earlier use: a new database there would
 * know none of the nodes the lost one ran. `earlierUse` names what was found (empty: a first start).
 */
export function refuseBlankDatabase(path: string, dataDir: string, how: string, earlierUse: readonly string[]): void {
  if (earlierUse.length === 0) return;
  throw new StorageError(
    `database ${path} is ${how} but data dir ${dataDir} was used before (it holds ${earlierUse.join(", ")}): ${restoreAdvice(path)}; ` +
      "to start with a new, empty database instead (the nodes the old one ran are then unknown to it, and left running), pass --force-new-database",
  );
}

/**
 * Refuses to make a new database beside the WAL of a lost one, even with --force-new-database:
 * SQLite would replay the old changes into the new file.
 */
export function refuseLeftoverWal(path: string): void {
  const [wal, shm] = companionFiles(path) as [string, string];
  if (!existsSync(wal) || statSync(wal).size === 0) return;
  throw new StorageError(
    `database ${path} is blank but ${wal} beside it holds changes of the lost database, which a new one would replay: ${restoreAdvice(path)}, or move ${wal} and ${shm} away to start with a new database`,
  );
}

/** Creates the database file readable and writable by this user only; SQLite gives its WAL and SHM files the same mode. */
export function createPrivately(path: string): void {
  closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
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

/** Makes the data dir (0700) unless it exists; refuses a path that is not a directory. */
export function createDataDir(dataDir: string): void {
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) {
    throw new StorageError(`data dir ${dataDir} is not a directory: point --data-dir at a directory`);
  }
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new StorageError(`data dir ${dataDir} cannot be created: ${(cause as Error).message}`, { cause });
  }
}

/** Refuses a data dir this server's user cannot read and write, or one on a read-only mount. */
export function assertWritableDataDir(dataDir: string): void {
  try {
    accessSync(dataDir, constants.W_OK | constants.R_OK);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "EROFS") {
      throw new StorageError(`data dir ${dataDir} is on a read-only file system: remount it read-write, or choose another --data-dir`, { cause });
    }
    throw new StorageError(`data dir ${dataDir} is not writable by this server's user (uid ${process.getuid!()}): run chmod 700 ${dataDir}`, { cause });
  }
}
