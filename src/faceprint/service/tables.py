"""The service's own tables (API keys, their daily usage, the audit log), on either
engine: a component of the database's migrations, owned by the service, not the gallery."""

from __future__ import annotations

_SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    roles       TEXT NOT NULL,
    collections TEXT NOT NULL,
    rate        REAL NOT NULL,
    burst       INTEGER NOT NULL,
    daily_quota INTEGER NOT NULL,
    created     REAL NOT NULL,
    revoked     REAL
);
CREATE TABLE IF NOT EXISTS key_usage (
    key_id  INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    day     TEXT NOT NULL,
    queries INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
);
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    key_id      INTEGER,
    client      TEXT,
    method      TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    collection  TEXT,
    result_size INTEGER,
    status      INTEGER NOT NULL,
    ms          REAL NOT NULL,
    event       TEXT
);
CREATE INDEX IF NOT EXISTS audit_key_at ON audit(key_id, at)
"""

_POSTGRES_V1 = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          SERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    roles       TEXT NOT NULL,
    collections TEXT NOT NULL,
    rate        DOUBLE PRECISION NOT NULL,
    burst       INTEGER NOT NULL,
    daily_quota INTEGER NOT NULL,
    created     DOUBLE PRECISION NOT NULL,
    revoked     DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS key_usage (
    key_id  INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    day     TEXT NOT NULL,
    queries INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
);
CREATE TABLE IF NOT EXISTS audit (
    id          BIGSERIAL PRIMARY KEY,
    at          DOUBLE PRECISION NOT NULL,
    key_id      INTEGER,
    client      TEXT,
    method      TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    collection  TEXT,
    result_size INTEGER,
    status      INTEGER NOT NULL,
    ms          REAL NOT NULL,
    event       TEXT
);
CREATE INDEX IF NOT EXISTS audit_key_at ON audit(key_id, at)
"""

#: A database of faceprint 0.1 had these tables with other column types: start afresh
#: (keys must be created again; the old audit is kept as audit_v1).
_POSTGRES_FROM_V1 = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM information_schema.columns
             WHERE table_name = 'api_keys' AND column_name = 'roles'
               AND data_type = 'ARRAY') THEN
    DROP TABLE IF EXISTS key_usage;
    DROP TABLE IF EXISTS api_keys;
    ALTER TABLE IF EXISTS audit RENAME TO audit_v1;
  END IF;
END $$
"""

#: Score-leak defences (service/defences.py): score exposure and a per-target budget per
#: key, and the per-target counts. Existing keys keep what they had: full scores for admin
#: keys, 2 decimals for the others.
_V2 = """
ALTER TABLE api_keys ADD COLUMN scores TEXT NOT NULL DEFAULT 'rounded';
ALTER TABLE api_keys ADD COLUMN target_quota INTEGER NOT NULL DEFAULT 2000000000;
UPDATE api_keys SET scores = 'full' WHERE roles LIKE '%"admin"%';
CREATE TABLE IF NOT EXISTS target_usage (
    key_id     INTEGER NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    day        TEXT NOT NULL,
    collection TEXT NOT NULL,
    person     TEXT NOT NULL,
    queries    INTEGER NOT NULL,
    PRIMARY KEY (key_id, day, collection, person)
)
"""

SERVICE: dict[str, list[str]] = {
    "sqlite": [_SQLITE_V1, _V2],
    "postgresql": [_POSTGRES_FROM_V1 + ";" + _POSTGRES_V1, _V2],
}
COMPONENTS = [("service", SERVICE)]
