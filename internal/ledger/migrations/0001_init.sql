-- 0001_init: events, grants (current view) and grant_events (append-only history).
-- Times are INTEGER unix microseconds UTC; NULL is the zero time.

CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL DEFAULT '',
    url          TEXT NOT NULL DEFAULT '',
    open         INTEGER NOT NULL DEFAULT 1,
    closed_at    INTEGER,
    close_reason TEXT NOT NULL DEFAULT '',
    closed_by    TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    justification   TEXT NOT NULL DEFAULT '',
    event_id        TEXT NOT NULL REFERENCES events(id),
    event_kind      TEXT NOT NULL DEFAULT '',
    event_url       TEXT NOT NULL DEFAULT '',
    -- event_closed mirrors events.open = 0 for event_id, so that Due finds the
    -- grants of closed events through an index on grants alone.
    event_closed    INTEGER NOT NULL DEFAULT 0,
    target_kind     TEXT NOT NULL DEFAULT '',
    target_json     TEXT NOT NULL DEFAULT '{}', -- grant.Target; connection names only, never secrets
    target_key      TEXT NOT NULL DEFAULT '',
    connection      TEXT NOT NULL DEFAULT '',
    adopt_existing  INTEGER NOT NULL DEFAULT 0,
    requested       INTEGER NOT NULL DEFAULT 0, -- time.Duration, nanoseconds
    granted_at      INTEGER,
    expires_at      INTEGER,
    status          TEXT NOT NULL,
    end_reason      TEXT NOT NULL DEFAULT '',
    ended_at        INTEGER,
    revoked_by      TEXT NOT NULL DEFAULT '',
    verified_at     INTEGER,
    drift           TEXT NOT NULL DEFAULT '',
    revoke_attempts INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    next_attempt_at INTEGER,
    kept_by         TEXT NOT NULL DEFAULT '',
    version         INTEGER NOT NULL DEFAULT 1,
    claim_token     TEXT,
    claim_until     INTEGER
) STRICT;

-- Indexes. Due and Tombstones name theirs (INDEXED BY), so they cost in
-- proportion to the rows they return, never to the history.
-- Due, part 1: active grants past their expiry.
CREATE INDEX grants_active_expiry ON grants(expires_at) WHERE status = 'active';
-- Due, part 2: active grants whose event is closed.
CREATE INDEX grants_active_event_closed ON grants(event_id) WHERE status = 'active' AND event_closed = 1;
-- Due, part 3: due grants, by their next attempt.
CREATE INDEX grants_due ON grants(next_attempt_at) WHERE status = 'due';
-- Tombstones: revoked grants by end time.
CREATE INDEX grants_revoked_ended ON grants(ended_at) WHERE status = 'revoked';
-- Holders, and the latest tombstone per target key.
CREATE INDEX grants_target_key ON grants(target_key, status, ended_at);
-- CloseEvent and ListGrants by event.
CREATE INDEX grants_event ON grants(event_id, status);
-- ListGrants by status or owner.
CREATE INDEX grants_status ON grants(status, id);
CREATE INDEX grants_owner ON grants(owner);

CREATE TABLE grant_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_id TEXT NOT NULL REFERENCES grants(id),
    type     TEXT NOT NULL,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL DEFAULT '',
    detail   TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX grant_events_grant ON grant_events(grant_id, seq);

CREATE TRIGGER grant_events_no_update BEFORE UPDATE ON grant_events
BEGIN
    SELECT RAISE(ABORT, 'grant_events is append-only: history entries cannot be changed');
END;

CREATE TRIGGER grant_events_no_delete BEFORE DELETE ON grant_events
BEGIN
    SELECT RAISE(ABORT, 'grant_events is append-only: history entries cannot be deleted');
END;
