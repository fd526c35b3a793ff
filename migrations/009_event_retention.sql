-- Retention (server/src/store/Retention.ts): the events of graphs settled longer ago than the
-- retention, node events as old, expired graphs and stopped nodes are deleted. A watcher that
-- resumes inside a deleted stretch of the log must be told so, never handed what follows as if
-- nothing were missing: these record, per graph and per group's node events, the highest
-- sequence number deleted, and resuming after an earlier one is refused.
--
-- Sequence numbers stay increasing without AUTOINCREMENT (see 006): retention never deletes the
-- log's newest event, so the next rowid is still one past every number ever handed out.

CREATE TABLE compacted_graph_events (
  graph_id TEXT PRIMARY KEY REFERENCES graphs (id),
  through_sequence INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE compacted_node_events (
  group_name TEXT PRIMARY KEY REFERENCES groups (name),
  through_sequence INTEGER NOT NULL
) WITHOUT ROWID;
