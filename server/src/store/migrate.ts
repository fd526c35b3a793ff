import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Database } from "better-sqlite3";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const MIGRATION_FILE = /^(\d+)_([a-z0-9_]+)\.sql$/;

/** Told of each migration as it starts and once it is committed: a long one on a big database is visible while it runs. */
export interface MigrationLog {
  applying(migration: Migration): void;
  applied(migration: Migration, durationMs: number): void;
}

/** The file holds another program's tables, or a ledger that is not Drover's: it is refused, never migrated. */
export class ForeignDatabaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ForeignDatabaseError";
  }
}

/** Reads `NNN_name.sql` files in version order; any other file in the folder is an error. */
export function readMigrations(directory: string): Migration[] {
  const migrations = readdirSync(directory)
    .filter((file) => file.endsWith(".sql"))
    .map((file) => {
      const match = MIGRATION_FILE.exec(file);
      if (!match) throw new Error(`migration file ${file} is misnamed: use NNN_lower_snake_name.sql`);
      return { version: Number(match[1]), name: match[2]!, sql: readFileSync(join(directory, file), "utf8") };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`migration ${migration.version}_${migration.name} is out of sequence: expected number ${index + 1}`);
    }
  });
  return migrations;
}

/**
 * Applies every migration not yet in the ledger, each in its own transaction together
 * with its ledger row, so a crash leaves each migration either applied or not at all.
 * Returns the versions applied by this call.
 */
export function migrate(db: Database, migrations: readonly Migration[], log?: MigrationLog): number[] {
  assertDroversLedger(db, migrations);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const applied = new Set(
    db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[],
  );
  const newest = migrations.at(-1)?.version ?? 0;
  const unknown = [...applied].filter((version) => version > newest);
  if (unknown.length > 0) {
    throw new Error(
      `the database has migration ${Math.max(...unknown)} but this server knows only up to ${newest}: run a newer server`,
    );
  }
  const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
  const done: number[] = [];
  // A migration may rebuild a table that others refer to (SQLite's way to change a
  // constraint), which needs foreign keys off; they are checked before each commit instead.
  const foreignKeys = db.pragma("foreign_keys", { simple: true });
  db.pragma("foreign_keys = OFF");
  try {
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      log?.applying(migration);
      const began = performance.now();
      db.transaction(() => {
        db.exec(migration.sql);
        const violations = db.pragma("foreign_key_check") as unknown[];
        if (violations.length > 0) {
          throw new Error(`migration ${migration.version}_${migration.name} breaks ${violations.length} foreign keys`);
        }
        record.run(migration.version, migration.name, Date.now());
      })();
      log?.applied(migration, Math.round(performance.now() - began));
      done.push(migration.version);
    }
  } finally {
    db.pragma(`foreign_keys = ${foreignKeys ? "ON" : "OFF"}`);
  }
  return done;
}

/**
 * Refuses a file that holds tables but no ledger (another program's database), or a ledger
 * whose columns or migration names are not Drover's. An empty file is Drover's to create.
 */
export function assertDroversLedger(db: Database, migrations: readonly Migration[]): void {
  const tables = db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
    .pluck()
    .all() as string[];
  if (tables.length === 0) return;
  if (!tables.includes("schema_migrations")) {
    const shown = tables.length > 5 ? `${tables.slice(0, 5).join(", ")}, …` : tables.join(", ");
    throw new ForeignDatabaseError(`it has tables (${shown}) but no schema_migrations ledger`);
  }
  const columns = (db.prepare("SELECT name FROM pragma_table_info('schema_migrations')").pluck().all() as string[]).sort();
  if (columns.join(",") !== "applied_at,name,version") {
    throw new ForeignDatabaseError(`its schema_migrations table has the columns ${columns.join(", ")}, not Drover's version, name and applied_at`);
  }
  const ours = new Map(migrations.map((migration) => [migration.version, migration.name]));
  const ledger = db.prepare("SELECT version, name FROM schema_migrations ORDER BY version").all() as { version: number; name: string }[];
  for (const row of ledger) {
    const name = ours.get(row.version);
    // Versions beyond this server's are a newer Drover's: migrate() says so.
    if (name !== undefined && name !== row.name) {
      throw new ForeignDatabaseError(`its schema_migrations ledger records ${row.version}_${row.name} where Drover's migration ${row.version} is ${row.version}_${name}`);
    }
  }
}
