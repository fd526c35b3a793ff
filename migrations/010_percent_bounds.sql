-- Max surge and max unavailable may be given as a percent of count (Kubernetes' "25%"). The
-- percent is kept as given (NULL: given as a number of nodes); max_surge and max_unavailable
-- then hold it resolved against the revision's count, for readers that know only nodes.
ALTER TABLE spec_revisions ADD COLUMN max_surge_percent INTEGER CHECK (max_surge_percent BETWEEN 0 AND 100);
ALTER TABLE spec_revisions ADD COLUMN max_unavailable_percent INTEGER CHECK (max_unavailable_percent BETWEEN 0 AND 100);
