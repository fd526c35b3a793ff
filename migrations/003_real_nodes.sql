-- Real nodes: a node can be unhealthy (failing its health check), and each group can have
-- a template its nodes are started from.

-- SQLite cannot change a CHECK constraint in place, so the nodes table is rebuilt; no
-- other table refers to it by foreign key.
CREATE TABLE nodes_new (
  id TEXT PRIMARY KEY,
  group_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('starting', 'running', 'unhealthy', 'stopping', 'stopped', 'failed')),
  host TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  error TEXT
) WITHOUT ROWID;
INSERT INTO nodes_new SELECT id, group_name, version, state, host, created_at, updated_at, error FROM nodes;
DROP TABLE nodes;
ALTER TABLE nodes_new RENAME TO nodes;
CREATE INDEX nodes_by_group_and_state ON nodes (group_name, state);

-- A group's node template (JSON: command, args, env, health check), used for nodes started
-- after it is set, as an instance template is.
CREATE TABLE group_templates (
  group_name TEXT PRIMARY KEY,
  template TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
