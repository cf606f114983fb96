-- The tables of the TypeScript SDK's SQLite driver (persist-sqlite 0.2.x),
-- with the same names and columns, so a database it wrote opens as is.
CREATE TABLE IF NOT EXISTS sessions (
    id                 TEXT PRIMARY KEY,
    agent              TEXT NOT NULL,
    agent_session_id   TEXT NOT NULL,
    last_connection_id TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    destroyed_at       INTEGER,
    session_init_json  TEXT
);

CREATE TABLE IF NOT EXISTS events (
    id            TEXT PRIMARY KEY,
    event_index   INTEGER NOT NULL,
    session_id    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    connection_id TEXT NOT NULL,
    sender        TEXT NOT NULL,
    payload_json  TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_events_session_order ON events (session_id, event_index, id);
