"""The photo library's tables: a component (``library``) of the database's migrations,
owned by the library, on either engine (only this DDL differs; every query is shared).

* ``library_files``: every photo file seen (path, size, mtime, content hash), so a re-run
  only reads new or changed files;
* ``library_photos``: one row per distinct content (sha256): displayed size, capture time
  (EXIF), the file's modification time;
* ``library_faces``: every detected face of a photo: its stable key (photo sha256 + box
  rounded to pixels), box, landmarks, quality, detector score, template (encrypted at rest
  with the gallery's codec), cluster (NULL: unassigned) and whether it still awaits
  clustering (``pending``);
* human decisions, keyed by face key so they outlive any re-index: ``library_labels``
  (this face is NAME / hidden), ``library_rejections`` (this face is not NAME) and
  ``library_decisions`` + ``library_decision_faces`` (faces merged together, or split
  apart: two sides).
"""

from __future__ import annotations

_COMMON = """
CREATE TABLE IF NOT EXISTS library_files (
    id            {serial},
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    size          BIGINT NOT NULL,
    mtime_ns      BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    UNIQUE (collection_id, path)
);
CREATE INDEX IF NOT EXISTS library_files_sha ON library_files(collection_id, sha256);
CREATE TABLE IF NOT EXISTS library_photos (
    id            {serial},
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    sha256        TEXT NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    taken         {real},
    mtime         {real} NOT NULL,
    indexed       {real} NOT NULL,
    UNIQUE (collection_id, sha256)
);
CREATE TABLE IF NOT EXISTS library_faces (
    id            {serial},
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    photo_id      BIGINT NOT NULL REFERENCES library_photos(id) ON DELETE CASCADE,
    face_key      TEXT NOT NULL,
    x0            {real} NOT NULL,
    y0            {real} NOT NULL,
    x1            {real} NOT NULL,
    y1            {real} NOT NULL,
    landmarks     TEXT NOT NULL,
    quality       {real},
    score         {real} NOT NULL,
    embedding     {blob} NOT NULL,
    dim           INTEGER NOT NULL,
    pack          TEXT NOT NULL,
    cluster       BIGINT,
    pending       INTEGER NOT NULL DEFAULT 1,
    UNIQUE (collection_id, face_key)
);
CREATE INDEX IF NOT EXISTS library_faces_photo ON library_faces(photo_id);
CREATE INDEX IF NOT EXISTS library_faces_cluster ON library_faces(collection_id, cluster);
CREATE TABLE IF NOT EXISTS library_labels (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    face_key      TEXT NOT NULL,
    person        TEXT,
    hidden        INTEGER NOT NULL DEFAULT 0,
    source        TEXT NOT NULL,
    created       {real} NOT NULL,
    PRIMARY KEY (collection_id, face_key)
);
CREATE INDEX IF NOT EXISTS library_labels_person ON library_labels(collection_id, person);
CREATE TABLE IF NOT EXISTS library_rejections (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    face_key      TEXT NOT NULL,
    person        TEXT NOT NULL,
    created       {real} NOT NULL,
    PRIMARY KEY (collection_id, face_key, person)
);
CREATE TABLE IF NOT EXISTS library_decisions (
    id            {serial},
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    created       {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS library_decision_faces (
    decision_id   BIGINT NOT NULL REFERENCES library_decisions(id) ON DELETE CASCADE,
    face_key      TEXT NOT NULL,
    side          INTEGER NOT NULL,
    PRIMARY KEY (decision_id, face_key)
);
CREATE INDEX IF NOT EXISTS library_decision_faces_key ON library_decision_faces(face_key)
"""

#: The library component's migrations, per engine.
LIBRARY: dict[str, list[str]] = {
    "sqlite": [_COMMON.format(serial="INTEGER PRIMARY KEY", real="REAL", blob="BLOB")],
    "postgresql": [
        _COMMON.format(serial="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION", blob="BYTEA")
    ],
}
#: As ``components=`` of SqliteDatabase / PostgresDatabase take it.
COMPONENT = ("library", LIBRARY)
