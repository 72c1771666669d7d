"""Face quality: one score in [0, 1] per face with the reasons behind it."""

from faceprint.quality.score import Quality, assess, fill, pitch, pose

__all__ = ["Quality", "assess", "fill", "pitch", "pose"]
