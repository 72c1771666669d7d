"""Images and files in and out, safe against hostile input.

* :func:`load_image` / :func:`decode`: any JPEG, PNG, WebP, BMP, TIFF, GIF (first frame),
  AVIF, HEIC (with pillow-heif) file or bytes to upright RGB uint8, within a memory budget;
* :func:`read_file` / :func:`file_sha256`: regular files only, size-limited, never hanging;
* :func:`save_image`.

Limits come from the environment (:mod:`faceprint.io.limits`): ``FACEPRINT_DECODE_BUDGET``,
``FACEPRINT_MAX_PIXELS``, ``FACEPRINT_MAX_FILE_BYTES``, ``FACEPRINT_MAX_DECODES``.
"""

from faceprint.io.decode import Decoded, decode, load_image
from faceprint.io.files import file_sha256, open_regular, read_file
from faceprint.io.image import save_image
from faceprint.io.limits import decode_budget, max_decodes, max_file_bytes, max_pixels

__all__ = [
    "Decoded",
    "decode",
    "decode_budget",
    "file_sha256",
    "load_image",
    "max_decodes",
    "max_file_bytes",
    "max_pixels",
    "open_regular",
    "read_file",
    "save_image",
]
