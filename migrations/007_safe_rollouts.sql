-- Safe rollouts: what runs is part of a revision (its template), nodes record the revision
-- they were started from, rollouts can wait for min-ready, a canary's promote gate, or a
-- rollout bound, and healing graphs are told apart from repairs.

-- The template as JSON (NULL: the server's default template) and its hash, which a node
-- started from it records (Kubernetes' pod-template-hash); '' stands for "as the nodes were
-- started" in revisions from before this migration and for the default template.
ALTER TABLE spec_revisions ADD COLUMN template TEXT;
ALTER TABLE spec_revisions ADD COLUMN template_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE spec_revisions ADD COLUMN min_ready_ms INTEGER NOT NULL DEFAULT 0 CHECK (min_ready_ms >= 0);
ALTER TABLE spec_revisions ADD COLUMN canary INTEGER NOT NULL DEFAULT 0 CHECK (canary >= 0);
ALTER TABLE spec_revisions ADD COLUMN auto_promote_after_ms INTEGER NOT NULL DEFAULT 0 CHECK (auto_promote_after_ms >= 0);

-- A group's template used to live beside its revisions; it is now its current revision's.
-- The table stays for a template set before a group's first update.
UPDATE spec_revisions SET template = (SELECT t.template FROM group_templates t WHERE t.group_name = spec_revisions.group_name)
  WHERE revision = (SELECT g.revision FROM groups g WHERE g.name = spec_revisions.group_name);
DELETE FROM group_templates WHERE group_name IN (SELECT name FROM groups);

-- The revision a node was started from and its template's hash (NULL: started before this
-- migration, taken as current), and how its process last ended.
ALTER TABLE nodes ADD COLUMN revision INTEGER;
ALTER TABLE nodes ADD COLUMN template_hash TEXT;
ALTER TABLE nodes ADD COLUMN exit_status TEXT;

-- SQLite cannot change a CHECK constraint in place: rebuild graphs for the 'heal' reason
-- (foreign keys are off while migrations run, and checked before each commits).
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
  -- 'update': made by a new revision; 'repair': by the reconciler for drift after a rollout
  -- succeeded; 'operation': by an operation on one node; 'heal': failed nodes replaced at
  -- their own revision while the rollout is failed, paused, cancelled or running.
  reason TEXT NOT NULL DEFAULT 'update' CHECK (reason IN ('update', 'repair', 'operation', 'heal')),
  paused_at INTEGER,
  message TEXT,
  next_graph_id TEXT,
  FOREIGN KEY (group_name, revision) REFERENCES spec_revisions (group_name, revision)
) WITHOUT ROWID;
INSERT INTO graphs_new (id, group_name, revision, state, created_at, started_at, finished_at, error, retries, reason,
  paused_at, message, next_graph_id)
  SELECT id, group_name, revision, state, created_at, started_at, finished_at, error, retries, reason, paused_at,
    message, next_graph_id FROM graphs;
DROP TABLE graphs;
ALTER TABLE graphs_new RENAME TO graphs;
CREATE INDEX graphs_by_group ON graphs (group_name, id);
CREATE INDEX graphs_unsettled ON graphs (state) WHERE state IN ('pending', 'running');
CREATE INDEX graphs_by_revision ON graphs (group_name, revision);

-- And tasks, for the promote gate, a start's own revision (a healing start uses the failed
-- node's), whether a task is gated on the rollout bounds, and why a ready task waits.
CREATE TABLE tasks_new (
  graph_id TEXT NOT NULL REFERENCES graphs (id),
  id INTEGER NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('start_node', 'shut_down_node', 'do_nothing', 'await_promotion')),
  prerequisites TEXT NOT NULL,
  node_id TEXT,
  version INTEGER,
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  started_at INTEGER,
  finished_at INTEGER,
  revision INTEGER,
  template_hash TEXT,
  gated INTEGER NOT NULL DEFAULT 0,
  waiting TEXT,
  PRIMARY KEY (graph_id, id)
) WITHOUT ROWID;
INSERT INTO tasks_new (graph_id, id, action, prerequisites, node_id, version, state, attempts, error, started_at, finished_at)
  SELECT graph_id, id, action, prerequisites, node_id, version, state, attempts, error, started_at, finished_at FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
