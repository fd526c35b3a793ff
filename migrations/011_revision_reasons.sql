-- Why a revision was made, in the words history and graphs ls both print: besides a user's
-- update, a rollback and the failure policy's rollback, an update that changed only the count
-- ('scale'), and the revisions nodes stop and nodes clone make ('stop', 'clone').

-- SQLite cannot change a CHECK constraint in place: rebuild spec_revisions (foreign keys are
-- off while migrations run, and checked before each commits).
CREATE TABLE spec_revisions_new (
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
INSERT INTO spec_revisions_new (group_name, revision, count, version, max_surge, max_unavailable, created_at, on_failure,
  task_timeout_ms, progress_deadline_ms, reason, restores, cpu_millis, memory_mb, template, template_hash, min_ready_ms,
  canary, auto_promote_after_ms, max_surge_percent, max_unavailable_percent)
  SELECT group_name, revision, count, version, max_surge, max_unavailable, created_at, on_failure,
    task_timeout_ms, progress_deadline_ms, reason, restores, cpu_millis, memory_mb, template, template_hash, min_ready_ms,
    canary, auto_promote_after_ms, max_surge_percent, max_unavailable_percent FROM spec_revisions;
DROP TABLE spec_revisions;
ALTER TABLE spec_revisions_new RENAME TO spec_revisions;
