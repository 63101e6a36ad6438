-- batlehub index, SQLite dialect.
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC): exact and sortable.

CREATE TABLE packages (
    registry   TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    -- Lowercased (Unicode) by the application, for case-insensitive search in both dialects.
    name_folded TEXT   NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (registry, name)
);

CREATE INDEX packages_by_update ON packages (registry, updated_at DESC, name);

CREATE TABLE versions (
    -- Insertion order, the tie-breaker between equal publish times.
    id           INTEGER PRIMARY KEY,
    registry     TEXT    NOT NULL,
    package      TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    published_at INTEGER NOT NULL,
    yanked       BOOLEAN NOT NULL DEFAULT FALSE,
    deprecated   TEXT,
    publisher    TEXT,
    -- JSON text.
    metadata     TEXT    NOT NULL,
    UNIQUE (registry, package, version),
    FOREIGN KEY (registry, package) REFERENCES packages (registry, name) ON DELETE CASCADE
);

CREATE TABLE files (
    registry TEXT    NOT NULL,
    package  TEXT    NOT NULL,
    version  TEXT    NOT NULL,
    filename TEXT    NOT NULL,
    -- Order of the file within its version.
    position INTEGER NOT NULL,
    sha256   TEXT    NOT NULL,
    size     INTEGER NOT NULL,
    PRIMARY KEY (registry, package, version, filename),
    -- A file name is never reused by another version of the same package.
    UNIQUE (registry, package, filename),
    FOREIGN KEY (registry, package, version)
        REFERENCES versions (registry, package, version) ON DELETE CASCADE
);

CREATE INDEX files_by_sha256 ON files (sha256);

CREATE TABLE tags (
    registry TEXT NOT NULL,
    package  TEXT NOT NULL,
    tag      TEXT NOT NULL,
    version  TEXT NOT NULL,
    PRIMARY KEY (registry, package, tag),
    FOREIGN KEY (registry, package, version)
        REFERENCES versions (registry, package, version) ON DELETE CASCADE
);

CREATE TABLE cached_documents (
    registry      TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    sha256        TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    etag          TEXT,
    last_modified TEXT,
    content_type  TEXT,
    upstream      INTEGER NOT NULL,
    fetched_at    INTEGER NOT NULL,
    PRIMARY KEY (registry, key)
);

CREATE TABLE cached_artifacts (
    registry   TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (registry, key)
);
