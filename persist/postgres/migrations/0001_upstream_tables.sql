-- The tables of the TypeScript SDK's PostgreSQL driver (persist-postgres
-- 0.2.x), with the same names and column types, so a schema it wrote is used
-- as is. {{schema}} is replaced by the quoted schema name.
CREATE TABLE IF NOT EXISTS {{schema}}.sessions (
    id                 TEXT PRIMARY KEY,
    agent              TEXT NOT NULL,
    agent_session_id   TEXT NOT NULL,
    last_connection_id TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    destroyed_at       BIGINT,
    session_init_json  JSONB
);

CREATE TABLE IF NOT EXISTS {{schema}}.events (
    id            TEXT PRIMARY KEY,
    event_index   BIGINT NOT NULL,
    session_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    connection_id TEXT NOT NULL,
    sender        TEXT NOT NULL,
    payload_json  JSONB NOT NULL
);

-- Tables of the driver's earliest releases had a non-text id and no
-- event_index; bring them to the shape above (no-ops otherwise).
ALTER TABLE {{schema}}.events ALTER COLUMN id TYPE TEXT;
ALTER TABLE {{schema}}.events ADD COLUMN IF NOT EXISTS event_index BIGINT;
UPDATE {{schema}}.events AS e
SET event_index = numbered.n
FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY created_at, id COLLATE "C") AS n
    FROM {{schema}}.events
) AS numbered
WHERE e.id = numbered.id AND e.event_index IS NULL;
ALTER TABLE {{schema}}.events ALTER COLUMN event_index SET NOT NULL;

CREATE INDEX IF NOT EXISTS idx_events_session_order ON {{schema}}.events (session_id, event_index, id);
