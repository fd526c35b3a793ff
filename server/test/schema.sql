CREATE INDEX events_by_graph ON events (graph_id, sequence) WHERE graph_id IS NOT NULL;

CREATE INDEX graphs_by_group ON graphs (group_name, id);

CREATE INDEX graphs_by_revision ON graphs (group_name, revision);

CREATE INDEX graphs_unsettled ON graphs (state) WHERE state IN ('pending', 'running');

CREATE INDEX node_events_by_group ON events (group_name, sequence) WHERE type = 'node';

CREATE INDEX nodes_by_group_and_state ON nodes (group_name, state);

CREATE TABLE compacted_graph_events (
  graph_id TEXT PRIMARY KEY REFERENCES graphs (id),
  through_sequence INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE compacted_node_events (
  group_name TEXT PRIMARY KEY REFERENCES groups (name),
  through_sequence INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE "events" (
  sequence INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('graph', 'task', 'task_retry', 'node')),
  group_name TEXT NOT NULL,
  graph_id TEXT,
  task_id INTEGER,
  node_id TEXT,
  state TEXT,
  action TEXT,
  version INTEGER,
  attempt INTEGER,
  error TEXT,
  retry_delay_ms INTEGER,
  message TEXT,
  next_graph_id TEXT
);

CREATE TABLE "graphs" (
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

CREATE TABLE group_deletions (
  group_name TEXT NOT NULL,
  revision INTEGER NOT NULL,
  requested_at INTEGER NOT NULL,
  PRIMARY KEY (group_name, revision),
  FOREIGN KEY (group_name, revision) REFERENCES spec_revisions (group_name, revision)
) WITHOUT ROWID;

CREATE TABLE group_templates (
  group_name TEXT PRIMARY KEY,
  template TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE groups (
  name TEXT PRIMARY KEY,
  -- The latest spec revision; the spec itself is the spec_revisions row.
  revision INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE "nodes" (
  id TEXT PRIMARY KEY,
  group_name TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('starting', 'running', 'unhealthy', 'stopping', 'stopped', 'failed')),
  host TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  error TEXT
, revision INTEGER, template_hash TEXT, exit_status TEXT) WITHOUT ROWID;

CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  );

CREATE TABLE "spec_revisions" (
  group_name TEXT NOT NULL REFERENCES groups (name),
  revision INTEGER NOT NULL,
  count INTEGER NOT NULL CHECK (count >= 0),
  version INTEGER NOT NULL CHECK (version >= 1),
  max_surge INTEGER NOT NULL CHECK (max_surge >= 0),
  max_unavailable INTEGER NOT NULL CHECK (max_unavailable >= 0),
  created_at INTEGER NOT NULL,
  on_failure TEXT NOT NULL DEFAULT 'stop' CHECK (on_failure IN ('stop', 'rollback')),
  task_timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (task_timeout_ms >= 0),
  progress_deadline_ms INTEGER NOT NULL DEFAULT 0 CHECK (progress_deadline_ms >= 0),
  reason TEXT NOT NULL DEFAULT 'update' CHECK (reason IN ('update', 'scale', 'rollback', 'auto_rollback', 'stop', 'clone')),
  restores INTEGER,
  cpu_millis INTEGER NOT NULL DEFAULT 0 CHECK (cpu_millis >= 0),
  memory_mb INTEGER NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
  template TEXT,
  template_hash TEXT NOT NULL DEFAULT '',
  min_ready_ms INTEGER NOT NULL DEFAULT 0 CHECK (min_ready_ms >= 0),
  canary INTEGER NOT NULL DEFAULT 0 CHECK (canary >= 0),
  auto_promote_after_ms INTEGER NOT NULL DEFAULT 0 CHECK (auto_promote_after_ms >= 0),
  max_surge_percent INTEGER CHECK (max_surge_percent BETWEEN 0 AND 100),
  max_unavailable_percent INTEGER CHECK (max_unavailable_percent BETWEEN 0 AND 100),
  PRIMARY KEY (group_name, revision)
) WITHOUT ROWID;

CREATE TABLE sqlite_sequence(name,seq);

CREATE TABLE storage_probe (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  written_at INTEGER NOT NULL
);

CREATE TABLE "tasks" (
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
