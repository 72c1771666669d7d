"""Errors raised by faceprint. Every one carries a message meant for a person."""


class FaceprintError(Exception):
    """Base class: anything faceprint refuses to do, with a clear reason."""

    exit_code = 1


class ImageError(FaceprintError):
    """A file that is missing, unreadable, not an image, truncated or too large."""

    exit_code = 3


class NoFaceError(FaceprintError):
    """An image in which no face was found where one was required."""

    exit_code = 4


class ModelError(FaceprintError):
    """A model file that is missing, fails its checksum or cannot be loaded."""

    exit_code = 5


class GalleryError(FaceprintError):
    """A gallery that cannot be opened, is empty where it must not be, or refuses a write."""

    exit_code = 6


class SpoofError(FaceprintError):
    """A face judged a presentation attack (photo, screen, mask) where a live one was required."""

    exit_code = 7


class KeyFileError(FaceprintError):
    """Key files that are missing, unsafe, corrupted or belong to another key set."""

    exit_code = 8


class VideoError(FaceprintError):
    """A video that is missing, cannot be opened or decoded, or has no frames."""

    exit_code = 3


class NotFoundError(GalleryError):
    """A collection, person, face or template that does not exist."""


class AuthError(FaceprintError):
    """Missing, unknown or revoked key (401), a key without the needed scope (403), or a
    limit reached (429, with ``retry_after`` seconds)."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
