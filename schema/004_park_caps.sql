-- Step 4: caps on parked calls (docs/limits.md "Call park"): how many calls one domain, and one extension of
-- it, may hold at once. 0 = no cap. Existing domains get the built-in defaults.
ALTER TABLE domains ADD COLUMN max_parked INTEGER NOT NULL DEFAULT 200;
ALTER TABLE domains ADD COLUMN max_parked_per_extension INTEGER NOT NULL DEFAULT 10;
