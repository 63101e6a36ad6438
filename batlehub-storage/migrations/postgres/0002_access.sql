-- batlehub index, PostgreSQL dialect: access control and policy state.
-- Text columns that are sorted on use COLLATE "C" (byte order, as in SQLite).

-- A detached signature uploaded with a file (base64) and its type (`ed25519`, ...).
ALTER TABLE files
    ADD COLUMN signature TEXT,
    ADD COLUMN signature_type TEXT;

-- Quota usage sums what a principal published in a registry.
CREATE INDEX versions_by_publisher ON versions (registry, publisher);

-- Personal access tokens; only the sha256 of the secret is stored.
CREATE TABLE tokens (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    principal     TEXT        NOT NULL,
    secret_sha256 TEXT        NOT NULL,
    -- `anonymous`, `user` or `admin`.
    role          TEXT        NOT NULL,
    -- JSON array of strings (text, as in SQLite).
    "groups"      TEXT        NOT NULL,
    description   TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    created_by    TEXT        NOT NULL
);

-- Package owners: a user (principal id) or a group.
CREATE TABLE owners (
    registry TEXT NOT NULL,
    package  TEXT NOT NULL,
    -- `user` or `group`.
    kind     TEXT NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (registry, package, kind, name)
);

-- A group's claim on a name prefix.
CREATE TABLE namespaces (
    registry   TEXT NOT NULL,
    prefix     TEXT COLLATE "C" NOT NULL,
    group_name TEXT NOT NULL,
    PRIMARY KEY (registry, prefix)
);

-- Package visibility, independent of `packages`: it may be set before the first publish and
-- survives the package's deletion. No row means public.
CREATE TABLE visibility (
    registry TEXT NOT NULL,
    package  TEXT COLLATE "C" NOT NULL,
    -- `public`, `internal` or `team`.
    level    TEXT NOT NULL,
    PRIMARY KEY (registry, package)
);

-- Administrator blocks of a package (versions NULL), a version or a version range.
CREATE TABLE blocks (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    registry   TEXT        NOT NULL,
    package    TEXT        NOT NULL,
    versions   TEXT,
    reason     TEXT        NOT NULL,
    created_by TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX blocks_by_package ON blocks (registry, package);

-- Fixed-window rate-limit counters.
CREATE TABLE rate_counters (
    key          TEXT        NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    count        BIGINT      NOT NULL,
    PRIMARY KEY (key, window_start)
);

-- The audit log, append-only; `id` is the tie-breaker between equal times.
CREATE TABLE audit_log (
    id        BIGSERIAL   PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    registry  TEXT        NOT NULL,
    action    TEXT        NOT NULL,
    package   TEXT,
    version   TEXT,
    principal TEXT        NOT NULL,
    outcome   TEXT        NOT NULL,
    rule      TEXT,
    reason    TEXT,
    client_ip TEXT
);

CREATE INDEX audit_by_package ON audit_log (registry, package, version, at);
CREATE INDEX audit_by_principal ON audit_log (principal, at);
CREATE INDEX audit_by_time ON audit_log (at);
