-- Parkway park engine schema, step 1. Applied when PRAGMA user_version < 1.
-- Times are milliseconds since the Unix epoch (UTC). Text columns are never NULL ('' = none).

CREATE TABLE domains (
    name             TEXT PRIMARY KEY,
    park_code        TEXT NOT NULL DEFAULT '*68',
    group_park_code  TEXT NOT NULL DEFAULT '*58',
    retrieve_code    TEXT NOT NULL DEFAULT '*88',
    occupied         TEXT NOT NULL DEFAULT 'stack',
    recall_seconds   INTEGER NOT NULL DEFAULT 300,
    recall_mode      TEXT NOT NULL DEFAULT 'parker',
    ring_seconds     INTEGER NOT NULL DEFAULT 30,
    alternate_wait   INTEGER NOT NULL DEFAULT 30,
    retry_seconds    INTEGER NOT NULL DEFAULT 10,
    alternate        TEXT NOT NULL DEFAULT '',
    open_extensions  INTEGER NOT NULL DEFAULT 1,
    dpid             INTEGER NOT NULL DEFAULT 0,
    default_rules    INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE extensions (
    domain   TEXT NOT NULL,
    ext      TEXT NOT NULL,
    display  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (domain, ext)
) WITHOUT ROWID;

-- Recall overrides: NULL = inherit from the domain.
CREATE TABLE call_groups (
    domain          TEXT NOT NULL,
    name            TEXT NOT NULL,
    notify_parker   INTEGER NOT NULL DEFAULT 0,
    occupied        TEXT,
    recall_seconds  INTEGER,
    recall_mode     TEXT,
    ring_seconds    INTEGER,
    alternate_wait  INTEGER,
    retry_seconds   INTEGER,
    alternate       TEXT,
    PRIMARY KEY (domain, name)
) WITHOUT ROWID;

-- A user is in at most one group per domain (docs/engine.md "Model and settings"): the primary key enforces it.
CREATE TABLE group_members (
    domain    TEXT NOT NULL,
    ext       TEXT NOT NULL,
    grp       TEXT NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (domain, ext)
) WITHOUT ROWID;
CREATE INDEX group_members_by_group ON group_members (domain, grp, position);

CREATE TABLE lots (
    domain          TEXT NOT NULL,
    name            TEXT NOT NULL,
    first_slot      INTEGER NOT NULL,
    last_slot       INTEGER NOT NULL,
    choice          TEXT NOT NULL DEFAULT 'first',
    last_used       INTEGER NOT NULL DEFAULT 0,
    occupied        TEXT,
    recall_seconds  INTEGER,
    recall_mode     TEXT,
    ring_seconds    INTEGER,
    alternate_wait  INTEGER,
    retry_seconds   INTEGER,
    alternate       TEXT,
    PRIMARY KEY (domain, name)
) WITHOUT ROWID;

CREATE TABLE parked_calls (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain          TEXT NOT NULL,
    extension       TEXT NOT NULL DEFAULT '',
    lot             TEXT NOT NULL DEFAULT '',
    slot            INTEGER NOT NULL DEFAULT 0,
    parker          TEXT NOT NULL DEFAULT '',
    parked_uri      TEXT NOT NULL DEFAULT '',
    parked_display  TEXT NOT NULL DEFAULT '',
    grp             TEXT NOT NULL DEFAULT '',
    parked_at       INTEGER NOT NULL,
    recall_at       INTEGER NOT NULL,
    recall_stage    INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'parked'
                    CHECK (state IN ('parked', 'recalling', 'retrieving')),
    blob            BLOB NOT NULL DEFAULT x'',
    version         INTEGER NOT NULL DEFAULT 1,
    request_key     TEXT NOT NULL DEFAULT '',
    retriever       TEXT NOT NULL DEFAULT '',
    recall_answered INTEGER NOT NULL DEFAULT 0,
    -- recall settings resolved at park time (rule > group/lot > domain > default)
    recall_seconds  INTEGER NOT NULL,
    recall_mode     TEXT NOT NULL,
    ring_seconds    INTEGER NOT NULL,
    alternate_wait  INTEGER NOT NULL,
    retry_seconds   INTEGER NOT NULL,
    alternate       TEXT NOT NULL DEFAULT '',
    CHECK (extension <> '' OR lot <> '')
);
-- A slot holds at most one call: the database itself refuses a second one.
CREATE UNIQUE INDEX parked_calls_slot ON parked_calls (domain, lot, slot) WHERE lot <> '';
-- The same request key parks once per domain (idempotency).
CREATE UNIQUE INDEX parked_calls_key ON parked_calls (domain, request_key) WHERE request_key <> '';
CREATE INDEX parked_calls_ext ON parked_calls (domain, extension, parked_at, id);
CREATE INDEX parked_calls_due ON parked_calls (recall_at);

-- Per watched target version counters (only grow, survive restarts).
CREATE TABLE target_versions (
    domain   TEXT NOT NULL,
    target   TEXT NOT NULL,   -- Target::key(): ext:103, slot:main/701, group:sales, lot:main
    version  INTEGER NOT NULL,
    PRIMARY KEY (domain, target)
) WITHOUT ROWID;

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('event_sequence', 0);

-- Dialplan rules in the shape of Kamailio's `dialplan` table, plus domain, disabled and continue.
CREATE TABLE rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain      TEXT NOT NULL DEFAULT '',
    dpid        INTEGER NOT NULL DEFAULT 0,
    pr          INTEGER NOT NULL DEFAULT 0,
    match_op    INTEGER NOT NULL CHECK (match_op IN (0, 1, 2)),
    match_exp   TEXT NOT NULL,
    match_len   INTEGER NOT NULL DEFAULT 0,
    subst_exp   TEXT NOT NULL DEFAULT '',
    repl_exp    TEXT NOT NULL DEFAULT '',
    attrs       TEXT NOT NULL DEFAULT '',
    disabled    INTEGER NOT NULL DEFAULT 0,
    continue    INTEGER NOT NULL DEFAULT 0
);
