-- Step 7: ownership and failover (docs/cluster.md "Ownership and failover"). Each live call has an owner node
-- and a fencing generation (+1 at every takeover); the owner's writes check both, so a node presumed dead that
-- comes back cannot act on a call it lost. Nodes renew a lease in `nodes`; a call whose owner's lease ran out is
-- taken over by a live node. An empty owner means no node claims the call (one node on SQLite, or calls
-- parked before this step): any node may adopt it. Stored watchers (subscriptions) have an owner too.
ALTER TABLE parked_calls ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE parked_calls ADD COLUMN owner_gen INTEGER NOT NULL DEFAULT 0;
CREATE INDEX parked_calls_owner ON parked_calls (owner);
ALTER TABLE watchers ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE TABLE nodes (
    name         TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    lease_until  INTEGER NOT NULL,
    incarnation  INTEGER NOT NULL
) WITHOUT ROWID;
