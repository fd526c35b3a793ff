import { chmodSync, existsSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { Logger } from "pino";
import { TOKEN_FILE } from "../auth/tokens.js";
import { StorageError } from "../errors.js";
import { assertWritableDataDir, companionFiles, createDataDir } from "./databaseFile.js";
import { DataDirLock } from "./DataDirLock.js";
import { DATABASE_FILE } from "./SqliteStore.js";

/**
 * What the server checks of its data dir before it opens the database, in this order:
 *
 * 1. no other server uses it (DataDirLock). The lock comes before any change to the dir: a
 *    server that is refused must not touch a running one's files (it once tightened the
 *    data dir of a running `--node-user` server, and its nodes lost their peers file);
 * 2. the dir is this user's and no one else can write it (0700; looser read bits are
 *    tightened, except the 0710 that `--node-user` gives the nodes' group so they can reach
 *    their own dirs without listing the data dir);
 * 3. the token and the database (with its WAL and SHM files) are this user's and no one else
 *    can write them (0600; looser read bits are tightened), and the process driver's node
 *    records are made private too;
 * 4. what shows the dir was used before (`earlierUse`), so that a lost database is refused
 *    rather than quietly replaced by an empty one.
 *
 * A file another user owns or can write may have been planted (a token others can write lets
 * them in), so it is refused, never tightened. Every refusal is one line naming the file and
 * the rule, with the command that fixes it.
 */
export interface PreparedDataDir {
  lock: DataDirLock;
  /** What shows the data dir was used before, in words ("a token file", "3 files in nodes/"); empty on a first start. */
  earlierUse: string[];
}

/** The process driver's directories: node records and logs, and each group's peer list. */
const NODES_DIR = "nodes";
const GROUPS_DIR = "groups";

/**
 * `nodeGroup`: the gid of `--node-user`, whose nodes pass through the data dir; a dir of that
 * group with mode 0710 is then kept as it is.
 */
export function prepareDataDir(dataDir: string, logger: Pick<Logger, "warn">, nodeGroup?: number): PreparedDataDir {
  createDataDir(dataDir);
  assertWritableDataDir(dataDir);
  assertPrivate(dataDir, "data dir", logger, { tighten: false, keepGroupSearch: true });
  const lock = DataDirLock.acquire(dataDir);
  try {
    assertPrivate(dataDir, "data dir", logger, { keepGroupSearch: nodeGroup !== undefined && statSync(dataDir).gid === nodeGroup });
    const database = join(dataDir, DATABASE_FILE);
    const files: [string, Kind][] = [[join(dataDir, TOKEN_FILE), "token file"], ...[database, ...companionFiles(database)].map((file): [string, Kind] => [file, "database"])];
    for (const [file, kind] of files) {
      if (existsSync(file)) assertPrivate(file, kind, logger);
    }
    tightenNodeRecords(join(dataDir, NODES_DIR), logger);
    return { lock, earlierUse: findEarlierUse(dataDir) };
  } catch (error) {
    lock.release();
    throw error;
  }
}

type Kind = "data dir" | "token file" | "database";

/** What fixes a file of this kind that another user owns. */
function ownerFix(kind: Kind, file: string, uid: number): string {
  switch (kind) {
    case "data dir":
      return `run chown -R ${uid} ${file}, or run the server as the dir's owner`;
    case "token file":
      return `someone may have planted it: remove it (a new token is made at start), or run chown ${uid} ${file} if it is yours`;
    case "database":
      return `run chown ${uid} ${file}, or run the server as the file's owner`;
  }
}

/** What fixes a file of this kind that group or others can write. */
function writableFix(kind: Kind, file: string): string {
  switch (kind) {
    case "data dir":
      return `run chmod 700 ${file}`;
    case "token file":
      return `someone may have planted it: remove it (a new token is made at start), or run chmod 600 ${file} if it is yours`;
    case "database":
      return `run chmod 600 ${file}`;
  }
}

/**
 * Refuses a file another user owns or that group or others can write; takes away the read
 * and execute bits group and others have (but group search with `keepGroupSearch`), logging
 * it, unless `tighten` is false (a check before the lock, which must change nothing).
 */
function assertPrivate(file: string, kind: Kind, logger: Pick<Logger, "warn">, { tighten: tightening = true, keepGroupSearch = false } = {}): void {
  const stat = statSync(file);
  const uid = process.getuid!();
  if (stat.uid !== uid) {
    throw new StorageError(`${kind} ${file} is owned by uid ${stat.uid}, not by this server's user (uid ${uid}): ${ownerFix(kind, file, uid)}`);
  }
  const mode = stat.mode & 0o7777;
  if ((mode & 0o022) !== 0) {
    const who = (mode & 0o020) !== 0 && (mode & 0o002) !== 0 ? "group and others" : (mode & 0o020) !== 0 ? "group" : "others";
    throw new StorageError(`${kind} ${file} is writable by ${who} (mode ${octal(mode)}): ${writableFix(kind, file)}`);
  }
  const kept = keepGroupSearch ? 0o010 : 0;
  if (tightening && (mode & 0o077 & ~kept) !== 0) tighten(file, mode, logger, kept);
}

/** The process driver's node records (pid, port, health check) are the server's alone, like the database. */
function tightenNodeRecords(nodesDir: string, logger: Pick<Logger, "warn">): void {
  if (!existsSync(nodesDir)) return;
  for (const name of readdirSync(nodesDir)) {
    if (!name.endsWith(".json")) continue;
    const file = join(nodesDir, name);
    const mode = statSync(file).mode & 0o7777;
    if ((mode & 0o077) !== 0) tighten(file, mode, logger);
  }
}

/** Takes away group's and others' bits except `kept` (the data dir's group search bit). */
function tighten(file: string, mode: number, logger: Pick<Logger, "warn">, kept = 0): void {
  const tightened = mode & ~(0o077 & ~kept);
  try {
    chmodSync(file, tightened);
  } catch (cause) {
    throw new StorageError(`${file} cannot be made private (chmod ${octal(tightened)}: ${(cause as Error).message}): fix its permissions by hand`, { cause });
  }
  logger.warn({ file, from: octal(mode), to: octal(tightened) }, "tightened a data dir file's permissions: only the server's user may read it");
}

const octal = (mode: number) => `0${mode.toString(8).padStart(3, "0")}`;

/**
 * What shows that a server used the data dir before: its token, the process driver's node
 * records and logs, group dirs, and files SQLite leaves beside a database. (The lock and pid
 * files are not: a first start that dies before making its database leaves them.)
 */
export function findEarlierUse(dataDir: string): string[] {
  const found: string[] = [];
  if (existsSync(join(dataDir, TOKEN_FILE))) found.push("a token file");
  const entries = (dir: string) => (existsSync(join(dataDir, dir)) ? readdirSync(join(dataDir, dir)) : []);
  const nodeFiles = entries(NODES_DIR);
  const records = nodeFiles.filter((name) => name.endsWith(".json")).length;
  if (records > 0) found.push(`${records} node record${records === 1 ? "" : "s"} in ${NODES_DIR}/`);
  else if (nodeFiles.length > 0) found.push(`${nodeFiles.length} file${nodeFiles.length === 1 ? "" : "s"} in ${NODES_DIR}/`);
  const groups = entries(GROUPS_DIR).length;
  if (groups > 0) found.push(`${groups} group dir${groups === 1 ? "" : "s"} in ${GROUPS_DIR}/`);
  const database = join(dataDir, DATABASE_FILE);
  for (const file of [...companionFiles(database), `${database}-journal`]) {
    if (existsSync(file)) found.push(basename(file));
  }
  return found;
}
