"""Galleries of known people: ``Gallery`` over a store of either engine."""

from faceprint.gallery.gallery import Gallery, Identification, open_store
from faceprint.gallery.store import Added, Candidate, Person, Store, Template

__all__ = [
    "Added",
    "Candidate",
    "Gallery",
    "Identification",
    "Person",
    "Store",
    "Template",
    "open_store",
]
