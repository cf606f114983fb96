-- meta holds the node id of this data directory.
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
) WITHOUT ROWID;

-- actors is the registry. generation is the last claimed generation;
-- owner_gen is the generation of the live Owner, 0 when none. A destroyed
-- actor keeps its row (destroyed_at set) so that its id is never reused;
-- the partial unique index frees its name and key.
CREATE TABLE actors (
    actor_id     TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    key_canon    TEXT NOT NULL,
    key_json     TEXT NOT NULL,
    input        BLOB,
    created_at   INTEGER NOT NULL,
    generation   INTEGER NOT NULL DEFAULT 0,
    owner_gen    INTEGER NOT NULL DEFAULT 0,
    destroyed_at INTEGER
);
CREATE UNIQUE INDEX actors_name_key ON actors (name, key_canon) WHERE destroyed_at IS NULL;

CREATE TABLE actor_state (
    actor_id   TEXT PRIMARY KEY,
    rev        INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    blob       BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE actor_events (
    actor_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    args       BLOB,
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (actor_id, seq)
) WITHOUT ROWID;

-- actor_kv keys compare with the BINARY collation: byte order.
CREATE TABLE actor_kv (
    actor_id TEXT NOT NULL,
    ns       TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    BLOB NOT NULL,
    PRIMARY KEY (actor_id, ns, key)
) WITHOUT ROWID;

CREATE TABLE schedules (
    actor_id TEXT NOT NULL,
    id       TEXT NOT NULL,
    due_at   INTEGER NOT NULL,
    action   TEXT NOT NULL,
    args     BLOB,
    PRIMARY KEY (actor_id, id)
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (due_at, actor_id, id);
