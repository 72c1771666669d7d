"""Images in and out: ``load_image`` (see :mod:`faceprint.io.decode`) and ``save_image``.

Every failure becomes an ImageError whose message says what is wrong with the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image as PILImage

from faceprint.errors import ImageError
from faceprint.io.decode import Decoded, decode, load_image
from faceprint.io.limits import DEFAULT_MAX_PIXELS, max_pixels
from faceprint.types import Image

__all__ = ["DEFAULT_MAX_PIXELS", "Decoded", "decode", "load_image", "max_pixels", "save_image"]


def save_image(path: str | os.PathLike[str], image: Image, quality: int = 92) -> None:
    """Write an RGB image; format from the file extension."""
    out = Path(path)
    try:
        PILImage.fromarray(image).save(out, quality=quality)
    except (OSError, ValueError, KeyError) as exc:
        raise ImageError(f"{out}: cannot write image ({exc})") from exc
