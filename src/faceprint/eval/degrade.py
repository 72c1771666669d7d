"""Image degradations for robustness figures, applied to the probe side of an evaluation.

A spec is ``name:param`` items separated by commas, e.g.
``blur:3,downscale:4,jpeg:10,noise:0.05,elastic:4/10``:

* ``blur:S``       Gaussian blur with sigma S pixels
* ``downscale:F``  shrink by factor F (area), then back up to the original size (bilinear)
* ``jpeg:Q``       re-encode as JPEG at quality Q (1-100)
* ``noise:S``      additive Gaussian noise, S = standard deviation as a fraction of 255
* ``elastic:A/S``  local non-rigid deformation (Simard et al. 2003): uniform random
  per-pixel offsets, Gaussian-smoothed with sigma S pixels and scaled so their RMS length is
  alpha A pixels, applied with cv2.remap. A and S are for a 250-pixel image side (LFW) and
  scale with the image.

Everything random is seeded from (seed, the image's content hash), so a degraded image is
the same on every run and whatever order images are processed in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from faceprint.errors import FaceprintError
from faceprint.types import Image

KINDS = ("blur", "downscale", "jpeg", "noise", "elastic")
#: The image side the elastic parameters are expressed for (LFW's 250 x 250).
ELASTIC_REFERENCE_SIDE = 250.0
#: Largest blur sigma, downscale factor and elastic amplitude or smoothness (pixels).
MAX_PIXELS_PARAM = 100.0


@dataclass(frozen=True)
class Degradation:
    kind: str
    params: tuple[float, ...]

    @property
    def name(self) -> str:
        return f"{self.kind}:{'/'.join(f'{p:g}' for p in self.params)}"

    def apply(self, image: Image, seed: int = 0) -> Image:
        rng = np.random.default_rng([seed, _image_seed(image)])
        return _APPLY[self.kind](image, self.params, rng)


def parse(spec: str | None) -> list[Degradation]:
    """``"blur:3,jpeg:10"`` -> degradations; a clear error for anything malformed."""
    out: list[Degradation] = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        kind, _, rest = item.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise FaceprintError(
                f"unknown degradation {kind!r} in {spec!r}; choose from {', '.join(KINDS)}"
            )
        try:
            params = tuple(float(p) for p in rest.split("/")) if rest else ()
        except ValueError:
            raise FaceprintError(f"degradation {item!r}: parameters must be numbers") from None
        out.append(_check(Degradation(kind, params or _DEFAULTS[kind])))
    return out


_DEFAULTS: dict[str, tuple[float, ...]] = {
    "blur": (3.0,),
    "downscale": (4.0,),
    "jpeg": (10.0,),
    "noise": (0.05,),
    "elastic": (4.0, 10.0),
}


def _check(d: Degradation) -> Degradation:
    p = d.params
    want = len(_DEFAULTS[d.kind])
    if len(p) != want:
        raise FaceprintError(f"degradation {d.kind} takes {want} parameter(s), got {len(p)}")
    ok = {  # upper bounds too: a huge blur or warp kernel would run for hours
        "blur": 0 < p[0] <= MAX_PIXELS_PARAM,
        "downscale": 1 <= p[0] <= MAX_PIXELS_PARAM,
        "jpeg": 1 <= p[0] <= 100,
        "noise": 0 <= p[0] <= 1,
        "elastic": 0 <= p[0] <= MAX_PIXELS_PARAM and 0 < p[-1] <= MAX_PIXELS_PARAM,
    }[d.kind]
    if not ok:
        raise FaceprintError(f"degradation {d.name}: parameter out of range")
    return d


def _image_seed(image: Image) -> int:
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
    return int.from_bytes(digest[:8], "little")


def _blur(image: Image, p: tuple[float, ...], rng: np.random.Generator) -> Image:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigmaX=p[0], sigmaY=p[0]), np.uint8)


def _downscale(image: Image, p: tuple[float, ...], rng: np.random.Generator) -> Image:
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (max(1, round(w / p[0])), max(1, round(h / p[0]))), interpolation=cv2.INTER_AREA
    )
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


def _jpeg(image: Image, p: tuple[float, ...], rng: np.random.Generator) -> Image:
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(p[0])])
    if not ok:
        raise FaceprintError("JPEG re-encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        raise FaceprintError("JPEG re-encoding failed")
    return np.ascontiguousarray(decoded[:, :, ::-1], dtype=np.uint8)


def _noise(image: Image, p: tuple[float, ...], rng: np.random.Generator) -> Image:
    noisy = image.astype(np.float32) + rng.normal(0.0, p[0] * 255.0, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _elastic(image: Image, p: tuple[float, ...], rng: np.random.Generator) -> Image:
    h, w = image.shape[:2]
    scale = max(h, w) / ELASTIC_REFERENCE_SIDE
    alpha, sigma = p[0] * scale, p[1] * scale
    dx, dy = (
        cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
        for _ in range(2)
    )
    # normalise so alpha is the RMS displacement in pixels, whatever sigma is
    rms = float(np.sqrt(np.mean(dx**2 + dy**2))) or 1.0
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = gx + dx * (alpha / rms)
    my = gy + dy * (alpha / rms)
    warped = cv2.remap(
        image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    return np.asarray(warped, np.uint8)


_APPLY = {
    "blur": _blur,
    "downscale": _downscale,
    "jpeg": _jpeg,
    "noise": _noise,
    "elastic": _elastic,
}
