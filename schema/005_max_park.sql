-- Step 5: maximum park time (docs/engine.md "Recall"). After max_park_seconds parked, the recall rings the
-- ladder's final target once and the call is ended when that goes unanswered; 0 = no limit.
-- domains: the domain's setting; parked_calls: the snapshot taken at park time (rule > domain) and whether the
-- final attempt has begun (it survives a restart).
ALTER TABLE domains ADD COLUMN max_park_seconds INTEGER NOT NULL DEFAULT 1800;
ALTER TABLE parked_calls ADD COLUMN max_park_seconds INTEGER NOT NULL DEFAULT 1800;
ALTER TABLE parked_calls ADD COLUMN final_recall INTEGER NOT NULL DEFAULT 0;
