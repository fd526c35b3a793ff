-- Per-node operations and resources: a graph can be made by an operation on one node (a
-- restart), and a spec can reserve cpu and memory for each node.

-- SQLite cannot change a CHECK constraint in place: rebuild graphs (foreign keys are off
-- while migrations run, and checked before each commits).
CREATE TABLE graphs_new (
  id TEXT PRIMARY KEY,
  group_name TEXT NOT NULL,
  revision INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'superseded')),
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  error TEXT,
  retries INTEGER NOT NULL DEFAULT 0,
  -- 'update': made by a new revision; 'repair': by the reconciler for drift; 'operation': by an operation on one node.
  reason TEXT NOT NULL DEFAULT 'update' CHECK (reason IN ('update', 'repair', 'operation')),
  paused_at INTEGER,
  FOREIGN KEY (group_name, revision) REFERENCES spec_revisions (group_name, revision)
) WITHOUT ROWID;
INSERT INTO graphs_new (id, group_name, revision, state, created_at, started_at, finished_at, error, retries, reason, paused_at)
  SELECT id, group_name, revision, state, created_at, started_at, finished_at, error, retries, reason, paused_at FROM graphs;
DROP TABLE graphs;
ALTER TABLE graphs_new RENAME TO graphs;
CREATE INDEX graphs_by_group ON graphs (group_name, id);
CREATE INDEX graphs_unsettled ON graphs (state) WHERE state IN ('pending', 'running');
CREATE INDEX graphs_by_revision ON graphs (group_name, revision);

-- Reserved per node; 0: nothing reserved.
ALTER TABLE spec_revisions ADD COLUMN cpu_millis INTEGER NOT NULL DEFAULT 0 CHECK (cpu_millis >= 0);
ALTER TABLE spec_revisions ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0 CHECK (memory_mb >= 0);
