-- A settled graph keeps the decision its final event announced (an automatic rollback) and
-- the graph that follows it, so that a late watcher or `graphs show` can tell them too.
ALTER TABLE graphs ADD COLUMN message TEXT;
ALTER TABLE graphs ADD COLUMN next_graph_id TEXT;
