"""What every gallery backend offers: the public methods of ``SqliteGallery``.

``SqliteGallery`` (one file) and ``PostgresGallery`` (one collection in a PostgreSQL
database) both satisfy ``GalleryStore``; code that only needs people, templates,
settings and search takes a ``GalleryStore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from faceprint.errors import NotFoundError
from faceprint.gallery.sqlite import Candidate, Person, Template
from faceprint.match.search import F32


@runtime_checkable
class GalleryStore(Protocol):
    @property
    def pack(self) -> str | None: ...

    def setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str | None) -> None: ...

    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None: ...

    def get(self, name: str) -> Person: ...

    def people(self) -> list[Person]: ...

    def __len__(self) -> int: ...

    def remove(self, name: str) -> int: ...

    def add_templates(
        self,
        name: str,
        embeddings: Sequence[F32],
        *,
        pack: str,
        image_sha256: Sequence[str | None] | None = None,
        quality: Sequence[float | None] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[int]: ...

    def templates(self, name: str | None = None) -> list[Template]: ...

    def remove_template(self, template_id: int) -> None: ...

    def has_image(self, image_sha256: str) -> bool: ...

    def search(self, probes: F32, k: int = 1) -> list[list[Candidate]]: ...

    def close(self) -> None: ...


__all__ = ["Candidate", "GalleryStore", "NotFoundError", "Person", "Template"]
