-- Step 2: optional access lists (docs/engine.md "Model and settings") on call-park groups and lots.
-- Comma-separated extensions; '' = every user of the domain.
ALTER TABLE call_groups ADD COLUMN access TEXT NOT NULL DEFAULT '';
ALTER TABLE lots ADD COLUMN access TEXT NOT NULL DEFAULT '';
