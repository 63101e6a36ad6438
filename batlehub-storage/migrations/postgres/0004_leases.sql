-- Leases: one replica does a piece of work for all (an upstream download of one artifact,
-- the orphan sweep) while the others wait for its result or skip. A lease is taken by an
-- upsert that succeeds only when the row is absent, ended, or already the caller's.
CREATE TABLE leases (
    scope      TEXT        NOT NULL,
    name       TEXT        NOT NULL,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, name)
);
