"""The gallery's tables, per engine, as migrations applied in order (``faceprint_schema``
records how far each component got). Only DDL differs between engines; every query
faceprint runs is shared (gallery/store.py)."""

from __future__ import annotations

SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS faceprint_schema (
    component TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
)
"""

_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS db_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    generation INTEGER NOT NULL DEFAULT 0,
    created    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (collection_id, key)
);
CREATE TABLE IF NOT EXISTS people (
    id            INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created       REAL NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE TABLE IF NOT EXISTS templates (
    id            INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    person_id     INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding     BLOB NOT NULL,
    dim           INTEGER NOT NULL,
    pack          TEXT NOT NULL,
    image_sha256  TEXT,
    quality       REAL,
    created       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
CREATE INDEX IF NOT EXISTS templates_collection ON templates(collection_id);
CREATE INDEX IF NOT EXISTS templates_image ON templates(collection_id, image_sha256)
"""

_POSTGRES_V1 = """
CREATE TABLE IF NOT EXISTS db_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id         SERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    generation BIGINT NOT NULL DEFAULT 0,
    created    DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (collection_id, key)
);
CREATE TABLE IF NOT EXISTS people (
    id            BIGSERIAL PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created       DOUBLE PRECISION NOT NULL,
    UNIQUE (collection_id, name)
);
CREATE TABLE IF NOT EXISTS templates (
    id            BIGSERIAL PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    person_id     BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding     BYTEA NOT NULL,
    dim           INTEGER NOT NULL,
    pack          TEXT NOT NULL,
    image_sha256  TEXT,
    quality       REAL,
    created       DOUBLE PRECISION NOT NULL
);
ALTER TABLE people ALTER COLUMN metadata TYPE TEXT USING metadata::text;
ALTER TABLE people ALTER COLUMN metadata SET DEFAULT '{}';
CREATE INDEX IF NOT EXISTS templates_person ON templates(person_id);
CREATE INDEX IF NOT EXISTS templates_collection ON templates(collection_id);
CREATE INDEX IF NOT EXISTS templates_image ON templates(collection_id, image_sha256)
"""

#: The gallery component's migrations.
GALLERY: dict[str, list[str]] = {"sqlite": [_SQLITE_V1], "postgresql": [_POSTGRES_V1]}

#: A faceprint 0.1 gallery file (tables meta, people, templates; one implicit collection)
#: into the current layout, keeping person ids (encrypted templates are bound to them).
SQLITE_FROM_V1 = (
    """
ALTER TABLE people RENAME TO people_v1;
ALTER TABLE templates RENAME TO templates_v1;
DROP INDEX IF EXISTS templates_person;
DROP INDEX IF EXISTS templates_image
"""
    + ";"
    + _SQLITE_V1
    + """;
INSERT INTO collections(id, name, generation, created)
    SELECT 1, 'default',
           COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'), 0),
           (julianday('now') - 2440587.5) * 86400.0;
INSERT INTO people(id, collection_id, name, metadata, created)
    SELECT id, 1, name, metadata, created FROM people_v1;
INSERT INTO templates(id, collection_id, person_id, embedding, dim, pack, image_sha256,
                      quality, created)
    SELECT id, 1, person_id, embedding, dim, pack, image_sha256, quality, created
    FROM templates_v1;
INSERT INTO settings(collection_id, key, value)
    SELECT 1, substr(key, 9), value FROM meta WHERE key LIKE 'setting.%';
INSERT OR REPLACE INTO db_meta(key, value)
    SELECT key, value FROM meta WHERE key = 'template_key_check';
DROP TABLE templates_v1;
DROP TABLE people_v1;
DROP TABLE meta
"""
)
