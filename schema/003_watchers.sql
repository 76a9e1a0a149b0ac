-- Step 3: subscriptions (BLF / call-info watchers) a module resumes after a restart (docs/callpark.md "Restart").
-- The engine keeps them as opaque blobs keyed by the module's own id; it never reads them.
CREATE TABLE watchers (
    id TEXT PRIMARY KEY,
    blob BLOB NOT NULL
) WITHOUT ROWID;
