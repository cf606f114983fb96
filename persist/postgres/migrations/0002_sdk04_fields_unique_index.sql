-- Session fields added by the 0.4 SDK.
ALTER TABLE {{schema}}.sessions ADD COLUMN IF NOT EXISTS sandbox_id TEXT;
ALTER TABLE {{schema}}.sessions ADD COLUMN IF NOT EXISTS config_options_json JSONB;
ALTER TABLE {{schema}}.sessions ADD COLUMN IF NOT EXISTS modes_json JSONB;

-- Sessions are listed by (created_at, id) with byte-wise id order.
CREATE INDEX IF NOT EXISTS idx_sessions_order ON {{schema}}.sessions (created_at, id COLLATE "C");

-- Schemas written by concurrent TypeScript SDK instances can hold duplicate
-- (session_id, event_index) pairs. Renumber the affected sessions 1..n in
-- their listing order so the constraint below can be added.
UPDATE {{schema}}.events AS e
SET event_index = renumbered.n
FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY event_index, id COLLATE "C") AS n
    FROM {{schema}}.events
    WHERE session_id IN (
        SELECT session_id FROM {{schema}}.events GROUP BY session_id, event_index HAVING COUNT(*) > 1
    )
) AS renumbered
WHERE e.id = renumbered.id;

-- One event per index and session: the store assigns indexes, and this makes
-- a duplicate impossible even for writers that bypass it.
ALTER TABLE {{schema}}.events
    ADD CONSTRAINT events_session_id_event_index_key UNIQUE (session_id, event_index);

-- Covered by the unique constraint's index.
DROP INDEX IF EXISTS {{schema}}.idx_events_session_order;
