-- Step 8: change events across nodes (docs/cluster.md "Change events across nodes"). Written on PostgreSQL only
-- (several nodes share the store); on SQLite (one node) the table stays empty and nothing here costs a park.
-- change_log: every change event, in the transaction that made it, keyed by its event sequence (meta
-- 'event_sequence'), so a node that missed NOTIFYs catches up from the sequence it last saw. `origin` is the
-- engine instance that committed it; `body` the event (JSON). The engine keeps the most recent events only.
CREATE TABLE change_log (
    sequence  INTEGER PRIMARY KEY,
    origin    INTEGER NOT NULL,
    body      TEXT NOT NULL
);
-- +1 per committed configuration change (domains, extensions, groups, lots, rules): cached domain settings and
-- compiled rules are reloaded by the other nodes when it moves.
INSERT INTO meta (key, value) VALUES ('config_generation', 0);
