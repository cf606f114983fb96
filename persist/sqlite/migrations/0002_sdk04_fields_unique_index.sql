-- Session fields added by the 0.4 SDK.
ALTER TABLE sessions ADD COLUMN sandbox_id TEXT;
ALTER TABLE sessions ADD COLUMN config_options_json TEXT;
ALTER TABLE sessions ADD COLUMN modes_json TEXT;

CREATE INDEX IF NOT EXISTS idx_sessions_order ON sessions (created_at, id);

-- Databases written by concurrent TypeScript SDK instances can hold duplicate
-- (session_id, event_index) pairs. Renumber the affected sessions 1..n in
-- their listing order so the unique index below can be built.
UPDATE events
SET event_index = renumbered.n
FROM (
    SELECT id, ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY event_index, id) AS n
    FROM events
    WHERE session_id IN (
        SELECT session_id FROM events GROUP BY session_id, event_index HAVING COUNT(*) > 1
    )
) AS renumbered
WHERE events.id = renumbered.id;

-- One event per index and session: the store assigns indexes, and this makes
-- a duplicate impossible even for writers that bypass it.
CREATE UNIQUE INDEX IF NOT EXISTS ux_events_session_index ON events (session_id, event_index);

-- Covered by the unique index.
DROP INDEX IF EXISTS idx_events_session_order;
