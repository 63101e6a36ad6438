-- batlehub index, SQLite dialect: access control and policy state.
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC), as in 0001.

-- A detached signature uploaded with a file (base64) and its type (`ed25519`, ...).
ALTER TABLE files ADD COLUMN signature TEXT;
ALTER TABLE files ADD COLUMN signature_type TEXT;

-- Quota usage sums what a principal published in a registry.
CREATE INDEX versions_by_publisher ON versions (registry, publisher);

-- Personal access tokens; only the sha256 of the secret is stored.
CREATE TABLE tokens (
    id            TEXT    NOT NULL PRIMARY KEY,
    principal     TEXT    NOT NULL,
    secret_sha256 TEXT    NOT NULL,
    -- `anonymous`, `user` or `admin`.
    role          TEXT    NOT NULL,
    -- JSON array of strings.
    "groups"      TEXT    NOT NULL,
    description   TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    created_by    TEXT    NOT NULL
);

-- Package owners: a user (principal id) or a group.
CREATE TABLE owners (
    registry TEXT NOT NULL,
    package  TEXT NOT NULL,
    -- `user` or `group`.
    kind     TEXT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (registry, package, kind, name)
);

-- A group's claim on a name prefix.
CREATE TABLE namespaces (
    registry   TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    PRIMARY KEY (registry, prefix)
);

-- Package visibility, independent of `packages`: it may be set before the first publish and
-- survives the package's deletion. No row means public.
CREATE TABLE visibility (
    registry TEXT NOT NULL,
    package  TEXT NOT NULL,
    -- `public`, `internal` or `team`.
    level    TEXT NOT NULL,
    PRIMARY KEY (registry, package)
);

-- Administrator blocks of a package (versions NULL), a version or a version range.
CREATE TABLE blocks (
    id         TEXT    NOT NULL PRIMARY KEY,
    registry   TEXT    NOT NULL,
    package    TEXT    NOT NULL,
    versions   TEXT,
    reason     TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX blocks_by_package ON blocks (registry, package);

-- Fixed-window rate-limit counters.
CREATE TABLE rate_counters (
    key          TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);

-- The audit log, append-only; `id` is the tie-breaker between equal times.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    registry  TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    package   TEXT,
    version   TEXT,
    principal TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    rule      TEXT,
    reason    TEXT,
    client_ip TEXT
);

CREATE INDEX audit_by_package ON audit_log (registry, package, version, at);
CREATE INDEX audit_by_principal ON audit_log (principal, at);
CREATE INDEX audit_by_time ON audit_log (at);
