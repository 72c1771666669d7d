"""Face regions in XMP: Metadata Working Group regions written to sidecars, MWG and
Microsoft Photo regions read from sidecars and embedded packets.

* :class:`Region`: a named face area, normalised to the image (``x, y`` = centre).
* :func:`read_regions` (packet bytes), :func:`read_sidecar` (beside a photo),
  :func:`jpeg_xmp` (the packet of a JPEG's APP1 segment).
* :func:`update_regions` (packet bytes in, packet bytes out) and :func:`write_sidecar`
  (atomic; other content of an existing sidecar is kept).

**Sidecar names.** Read: ``photo.jpg.xmp`` first, then ``photo.xmp``. Write: the one that
exists, else ``photo.jpg.xmp`` (digiKam's and darktable's default; unlike ``photo.xmp`` it
cannot collide between ``photo.jpg`` and ``photo.cr2``). Originals are never touched.

**Which image frame.** MWG areas (and MP rectangles) are fractions of the image *as
displayed*, i.e. after the EXIF orientation is applied, and ``AppliedToDimensions`` is the
displayed width and height: this is how the MWG guidelines define regions, and what
digiKam, Lightroom and Picasa write. faceprint's boxes are in the same frame (the decoder
applies the orientation), so a box converts by scaling only. For files written by tools
that stored unrotated coordinates, :meth:`Region.box` takes ``frame="stored"`` and the
orientation; :func:`to_displayed` / :func:`to_stored` convert boxes between the frames.

**Updating.** Face regions faceprint writes replace the sidecar's MWG face regions; regions
of other types (pets, focus, barcodes), Microsoft regions and every other property stay.

**Permissions.** A new sidecar gets the photo's own read/write bits (as private as the photo
it describes, readable by the photo tools that read the photo); an updated one keeps its
mode. Names of people are personal data, but 0600 would hide them from the apps sidecars
exist for.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from faceprint.library import xmp_rdf as rdf
from faceprint.library.xmp_rdf import RDF, XmpError, q
from faceprint.models.store import atomic_write
from faceprint.types import Box

__all__ = [
    "Region", "XmpError", "jpeg_xmp", "read_regions", "read_sidecar", "sidecar_for",
    "sidecar_paths", "to_displayed", "to_stored", "update_regions", "write_sidecar",
]  # fmt: skip

MWG = "http://www.metadataworkinggroup.com/schemas/regions/"
ST_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
ST_AREA = "http://ns.adobe.com/xmp/sType/Area#"
MP = "http://ns.microsoft.com/photo/1.2/"
MPRI = "http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
MPREG = "http://ns.microsoft.com/photo/1.2/t/Region#"
_APP1_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


@dataclass(frozen=True)
class Region:
    """A face region: ``x, y`` the centre and ``w, h`` the size, as fractions of the image
    width and height; ``name`` the person (None when unnamed); ``source``: "mwg" or "mp"."""

    x: float
    y: float
    w: float
    h: float
    name: str | None = None
    type: str = "Face"
    source: str = "mwg"

    @classmethod
    def from_box(cls, box: Box, width: int, height: int, name: str | None = None) -> Region:
        """The region of a pixel box (left, top, right, bottom) of a displayed image."""
        if width <= 0 or height <= 0:
            raise XmpError(f"image size {width}x{height} must be positive")
        return cls(
            x=(box.left + box.right) / 2 / width,
            y=(box.top + box.bottom) / 2 / height,
            w=(box.right - box.left) / width,
            h=(box.bottom - box.top) / height,
            name=name,
        )

    def box(self, width: int, height: int, orientation: int = 1, frame: str = "displayed") -> Box:
        """The pixel box in the displayed image of ``width`` x ``height``. With
        ``frame="stored"`` the region is taken as fractions of the stored (unrotated) image
        and turned with the EXIF ``orientation``."""
        if frame == "displayed":
            return Box(
                (self.x - self.w / 2) * width, (self.y - self.h / 2) * height,
                (self.x + self.w / 2) * width, (self.y + self.h / 2) * height,
            )  # fmt: skip
        if frame != "stored":
            raise XmpError(f"unknown frame {frame!r}: 'displayed' or 'stored'")
        sw, sh = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        stored = Region(self.x, self.y, self.w, self.h).box(sw, sh)
        return to_displayed(stored, sw, sh, orientation)


def _point(x: float, y: float, w: int, h: int, orientation: int) -> tuple[float, float]:
    """A point of a stored w x h image in the displayed image (EXIF orientation 1..8)."""
    return {
        1: (x, y), 2: (w - x, y), 3: (w - x, h - y), 4: (x, h - y),
        5: (y, x), 6: (h - y, x), 7: (h - y, w - x), 8: (y, w - x),
    }.get(orientation, (x, y))  # fmt: skip


def _inverse(orientation: int) -> int:
    return {6: 8, 8: 6}.get(orientation, orientation)


def to_displayed(box: Box, width: int, height: int, orientation: int) -> Box:
    """A box of the stored ``width`` x ``height`` image in the displayed image."""
    a = _point(box.left, box.top, width, height, orientation)
    b = _point(box.right, box.bottom, width, height, orientation)
    return Box(min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))


def to_stored(box: Box, width: int, height: int, orientation: int) -> Box:
    """A box of the displayed ``width`` x ``height`` image in the stored image."""
    return to_displayed(box, width, height, _inverse(orientation))


def _number(value: ET.Element | str | None) -> float | None:
    try:
        v = float(rdf.text(value) or "nan")
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _mwg(root: ET.Element) -> list[Region]:
    out: list[Region] = []
    for regions in root.iter(q(MWG, "Regions")):
        struct = rdf.resources(regions)
        for li in rdf.items(rdf.field(struct, MWG, "RegionList")):
            item = rdf.resources(li)
            area = rdf.field(item, MWG, "Area")
            if not isinstance(area, ET.Element):
                continue
            a = rdf.resources(area)
            unit = rdf.text(rdf.field(a, ST_AREA, "unit")) or "normalized"
            x, y, w, h = (_number(rdf.field(a, ST_AREA, k)) for k in "xywh")
            if unit != "normalized" or x is None or y is None or not w or not h:
                continue  # points and circles (no w/h) and pixel units are not face boxes
            name = rdf.text(rdf.field(item, MWG, "Name")) or None
            kind = rdf.text(rdf.field(item, MWG, "Type")) or "Face"
            out.append(Region(x, y, w, h, name, kind, "mwg"))
    return out


def _mp(root: ET.Element) -> list[Region]:
    out: list[Region] = []
    for info in root.iter(q(MP, "RegionInfo")):
        for li in rdf.items(rdf.field(rdf.resources(info), MPRI, "Regions")):
            item = rdf.resources(li)
            rect = rdf.text(rdf.field(item, MPREG, "Rectangle")) or ""
            parts = [_number(p) for p in rect.split(",")]
            if len(parts) != 4 or None in parts:
                continue
            x, y, w, h = (float(p) for p in parts)  # type: ignore[arg-type]
            name = rdf.text(rdf.field(item, MPREG, "PersonDisplayName")) or None
            if name == "ffffffffffffffff":  # Windows Live Photo Gallery's "ignored face"
                continue
            out.append(Region(x + w / 2, y + h / 2, w, h, name, "Face", "mp"))
    return out


def read_regions(data: bytes, types: tuple[str, ...] = ("Face",)) -> list[Region]:
    """Face regions (MWG first, then Microsoft Photo) of an XMP packet or sidecar."""
    root, _ = rdf.parse(data)
    return [r for r in _mwg(root) + _mp(root) if r.type in types]


def sidecar_paths(photo: str | os.PathLike[str]) -> list[Path]:
    """The sidecar names looked for, in order: ``photo.jpg.xmp``, ``photo.xmp``."""
    p = Path(photo)
    return [p.with_name(p.name + ".xmp"), p.with_suffix(".xmp")]


def sidecar_for(photo: str | os.PathLike[str]) -> Path:
    """The sidecar faceprint writes: the existing one, else ``photo.jpg.xmp``."""
    paths = sidecar_paths(photo)
    return next((p for p in paths if p.is_file()), paths[0])


def read_sidecar(photo: str | os.PathLike[str]) -> list[Region]:
    """Face regions of a photo's sidecar ([] without one)."""
    for p in sidecar_paths(photo):
        if p.is_file():
            if p.stat().st_size > rdf.MAX_BYTES:
                raise XmpError(f"{p}: sidecar larger than {rdf.MAX_BYTES:,} bytes is refused")
            return read_regions(p.read_bytes())
    return []


def jpeg_xmp(data: bytes) -> bytes | None:
    """The standard XMP packet of a JPEG (its APP1 "http://ns.adobe.com/xap/1.0/" segment)."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more metadata
            return None
        size = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if size < 2 or pos + 2 + size > len(data):
            return None
        body = data[pos + 4 : pos + 2 + size]
        if marker == 0xE1 and body.startswith(_APP1_XMP):
            return body[len(_APP1_XMP) :]
        pos += 2 + size
    return None


def _fmt(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".") if v else "0"


def _region_li(bag: ET.Element, r: Region) -> None:
    li = ET.SubElement(bag, q(RDF, "li"), {q(RDF, "parseType"): "Resource"})
    ET.SubElement(li, q(MWG, "Type")).text = r.type
    if r.name:
        ET.SubElement(li, q(MWG, "Name")).text = r.name
    ET.SubElement(li, q(MWG, "Area"), {
        q(ST_AREA, "x"): _fmt(r.x), q(ST_AREA, "y"): _fmt(r.y), q(ST_AREA, "w"): _fmt(r.w),
        q(ST_AREA, "h"): _fmt(r.h), q(ST_AREA, "unit"): "normalized",
    })  # fmt: skip


def update_regions(existing: bytes | None, regions: list[Region], width: int, height: int) -> bytes:
    """A packet with ``regions`` as its MWG face regions (displayed image ``width`` x
    ``height``), everything else of ``existing`` (if any) kept."""
    if width <= 0 or height <= 0:
        raise XmpError(f"image size {width}x{height} must be positive")
    if existing:
        root, prefixes = rdf.parse(existing)
    else:
        root, prefixes = rdf.new_packet(), {}
    descs = rdf.descriptions(root)
    if not descs:
        raise XmpError("XMP has no rdf:RDF/rdf:Description to hold face regions")
    holder, kept = descs[0], []
    for d in descs:
        old = d.find(q(MWG, "Regions"))
        if old is not None:
            holder = d
            for li in rdf.items(rdf.field(rdf.resources(old), MWG, "RegionList")):
                kind = rdf.text(rdf.field(rdf.resources(li), MWG, "Type"))
                if kind != "Face":
                    kept.append(li)
            d.remove(old)
    new = ET.SubElement(holder, q(MWG, "Regions"), {q(RDF, "parseType"): "Resource"})
    ET.SubElement(new, q(MWG, "AppliedToDimensions"), {
        q(ST_DIM, "w"): str(int(width)), q(ST_DIM, "h"): str(int(height)),
        q(ST_DIM, "unit"): "pixel",
    })  # fmt: skip
    bag = ET.SubElement(ET.SubElement(new, q(MWG, "RegionList")), q(RDF, "Bag"))
    bag.extend(kept)
    for r in regions:
        if not all(math.isfinite(v) for v in (r.x, r.y, r.w, r.h)) or r.w <= 0 or r.h <= 0:
            raise XmpError(f"region {r} has no finite positive area")
        _region_li(bag, r)
    return rdf.serialize(root, prefixes)


def write_sidecar(
    photo: str | os.PathLike[str], regions: list[Region], width: int, height: int
) -> Path:
    """Write (or update) the photo's sidecar with these face regions, atomically."""
    target = sidecar_for(photo)
    existing = None
    if target.is_file():
        if target.stat().st_size > rdf.MAX_BYTES:
            raise XmpError(f"{target}: sidecar larger than {rdf.MAX_BYTES:,} bytes is refused")
        existing = target.read_bytes()
    data = update_regions(existing, regions, width, height)
    try:
        mode = (target if existing is not None else Path(photo)).stat().st_mode & 0o666
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    atomic_write(target, data, mode)
    return target
