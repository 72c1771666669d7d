"""Galleries of known people: the SQLite store and the high-level ``Gallery``."""

from faceprint.gallery.gallery import Gallery, Identification
from faceprint.gallery.sqlite import Candidate, Person, SqliteGallery

__all__ = ["Candidate", "Gallery", "Identification", "Person", "SqliteGallery"]
