-- Rollout controls: what a spec does when its graph fails, its deadlines, why a revision
-- or graph was made, and pausing a graph.

-- 'stop' leaves a failed graph for an operator; 'rollback' returns to the last revision whose graph succeeded.
ALTER TABLE spec_revisions ADD COLUMN on_failure TEXT NOT NULL DEFAULT 'stop' CHECK (on_failure IN ('stop', 'rollback'));
-- 0: the server's default.
ALTER TABLE spec_revisions ADD COLUMN task_timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (task_timeout_ms >= 0);
ALTER TABLE spec_revisions ADD COLUMN progress_deadline_ms INTEGER NOT NULL DEFAULT 0 CHECK (progress_deadline_ms >= 0);
-- 'update': a user's new spec; 'rollback': a user's return to an earlier revision; 'auto_rollback': the failure policy's.
ALTER TABLE spec_revisions ADD COLUMN reason TEXT NOT NULL DEFAULT 'update' CHECK (reason IN ('update', 'rollback', 'auto_rollback'));
-- The revision whose spec a rollback restored.
ALTER TABLE spec_revisions ADD COLUMN restores INTEGER;

-- 'update': made by a new revision; 'repair': made by the reconciler for drift under the same revision.
ALTER TABLE graphs ADD COLUMN reason TEXT NOT NULL DEFAULT 'update' CHECK (reason IN ('update', 'repair'));
-- Set while the graph is paused: running tasks finish, none start.
ALTER TABLE graphs ADD COLUMN paused_at INTEGER;

CREATE INDEX graphs_by_revision ON graphs (group_name, revision);

-- A decision an event records in words, and the graph that follows (an automatic rollback's).
ALTER TABLE events ADD COLUMN message TEXT;
ALTER TABLE events ADD COLUMN next_graph_id TEXT;
