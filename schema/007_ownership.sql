-- Step 7: ownership and failover (docs/cluster.md "Ownership and failover"). Each live call has an owner node
-- and a fencing generation (+1 at every takeover); the owner's writes check both, so a node presumed dead that
-- comes back cannot act on a call it lost. Nodes renew a lease in `nodes`; a call whose owner's lease ran out is
-- taken over by a live node. An empty owner means no node claims the call (one node on SQLite, or calls
-- parked before this step): the next node to register adopts it. Stored watchers (subscriptions) have an owner too.
ALTER TABLE parked_calls ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE parked_calls ADD COLUMN owner_gen INTEGER NOT NULL DEFAULT 0;
-- No index on owner: only a node's start and a takeover select by it (a scan then), and every park and retrieve
-- would pay for keeping one (docs/cluster.md "Ownership and failover").
ALTER TABLE watchers ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE TABLE nodes (
    name         TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    lease_until  INTEGER NOT NULL,
    incarnation  INTEGER NOT NULL
) WITHOUT ROWID;
