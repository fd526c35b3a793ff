-- One row the health service rewrites every few seconds: a read can succeed while every
-- write fails (a full disk, a read-only file), so health probes a commit, not a query.
CREATE TABLE storage_probe (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  written_at INTEGER NOT NULL
);
