-- Deleting a group (`client group delete`): its deletion is a revision that scales it to 0,
-- recorded here so that a restart finishes the job. The group is deleting while its current
-- revision has a row here; a newer revision (an update) cancels the deletion. Once a rollout
-- of the revision succeeds, the group's rows (these included) are deleted in the transaction
-- that records the success. The revision's own reason column says 'update' (its CHECK
-- predates deletions): a row here makes it a deletion.
CREATE TABLE group_deletions (
  group_name TEXT NOT NULL,
  revision INTEGER NOT NULL,
  requested_at INTEGER NOT NULL,
  PRIMARY KEY (group_name, revision),
  FOREIGN KEY (group_name, revision) REFERENCES spec_revisions (group_name, revision)
) WITHOUT ROWID;
