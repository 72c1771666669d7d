"""Images in and out."""

from faceprint.io.image import load_image, save_image

__all__ = ["load_image", "save_image"]
