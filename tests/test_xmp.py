"""Face regions in XMP sidecars and packets (faceprint.library.xmp), checked against exiftool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from faceprint.io import decode, load_image
from faceprint.library.xmp import (
    Region,
    XmpError,
    jpeg_xmp,
    read_regions,
    read_sidecar,
    sidecar_for,
    to_displayed,
    to_stored,
    update_regions,
    write_sidecar,
)
from faceprint.types import Box

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed")


def _jpeg(path: Path, size: tuple[int, int] = (400, 300), orientation: int = 1) -> Path:
    img = Image.new("RGB", size, (40, 40, 40))
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    img.save(path, "JPEG", exif=exif.tobytes())
    return path


def _exiftool(*args: str) -> Any:
    assert EXIFTOOL is not None
    out = subprocess.run([EXIFTOOL, *args], capture_output=True, check=True, timeout=60)
    return json.loads(out.stdout) if out.stdout.strip().startswith(b"[") else out.stdout


def test_box_region_round_trip() -> None:
    box = Box(100.0, 60.0, 180.0, 160.0)
    r = Region.from_box(box, 400, 300, "Alice")
    assert (r.x, r.y, r.w, r.h) == pytest.approx((0.35, 110 / 300, 0.2, 100 / 300))
    back = r.box(400, 300)
    assert back.as_list() == pytest.approx(box.as_list())
    with pytest.raises(XmpError):
        Region.from_box(box, 0, 300)


@needs_exiftool
def test_exiftool_reads_what_faceprint_writes(tmp_path: Path) -> None:
    photo = _jpeg(tmp_path / "photo.jpg")
    original = photo.read_bytes()
    names = ["Zoë Ångström", 'A & B <"quoted">']
    boxes = [Box(40, 30, 120, 130), Box(250, 100, 330, 220)]
    side = write_sidecar(photo, [Region.from_box(b, 400, 300, n) for b, n in
                                 zip(boxes, names, strict=True)], 400, 300)  # fmt: skip
    assert side == tmp_path / "photo.jpg.xmp" and photo.read_bytes() == original
    info = _exiftool("-j", "-struct", "-XMP-mwg-rs:RegionInfo", str(side))[0]["RegionInfo"]
    assert info["AppliedToDimensions"] == {"W": 400, "H": 300, "Unit": "pixel"}
    got = info["RegionList"]
    assert [g["Name"] for g in got] == names and all(g["Type"] == "Face" for g in got)
    for g, b in zip(got, boxes, strict=True):
        a = g["Area"]
        assert a["Unit"] == "normalized"
        assert (a["X"], a["Y"], a["W"], a["H"]) == pytest.approx(
            ((b.left + b.right) / 800, (b.top + b.bottom) / 600, b.width / 400, b.height / 300),
            abs=1e-6,
        )
    back = read_sidecar(photo)
    assert [r.name for r in back] == names
    for r, b in zip(back, boxes, strict=True):
        assert r.box(400, 300).as_list() == pytest.approx(b.as_list(), abs=1e-3)


@needs_exiftool
def test_faceprint_reads_what_exiftool_writes_sidecar_and_embedded(tmp_path: Path) -> None:
    photo = _jpeg(tmp_path / "p.jpg")
    mwg = ("-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=400,H=300,Unit=pixel},RegionList=["
           "{Name=Alice,Type=Face,Area={X=0.3,Y=0.4,W=0.1,H=0.15,Unit=normalized}},"
           "{Name=Rex,Type=Pet,Area={X=0.7,Y=0.7,W=0.2,H=0.2,Unit=normalized}}]}")  # fmt: skip
    mp = "-XMP-MP:RegionInfoMP={Regions=[{PersonDisplayName=Bob,Rectangle=0.1|, 0.2|, 0.3|, 0.4}]}"
    _exiftool("-q", "-o", str(tmp_path / "p.xmp"), mwg, mp, str(photo))
    _exiftool("-q", "-overwrite_original", mwg, mp, str(photo))
    want = [Region(0.3, 0.4, 0.1, 0.15, "Alice", "Face", "mwg"),
            Region(0.25, 0.4, 0.3, 0.4, "Bob", "Face", "mp")]  # fmt: skip
    side = read_sidecar(photo)  # p.xmp: the other naming convention
    packet = jpeg_xmp(photo.read_bytes())
    assert packet is not None
    assert decode(photo).xmp == packet  # what the decoder hands the indexer
    for got in (side, read_regions(packet)):
        assert [(r.name, r.source) for r in got] == [("Alice", "mwg"), ("Bob", "mp")]
        for g, w in zip(got, want, strict=True):
            assert (g.x, g.y, g.w, g.h) == pytest.approx((w.x, w.y, w.w, w.h))
    assert [r.name for r in read_regions(packet, types=("Face", "Pet"))] == ["Alice", "Rex", "Bob"]


@needs_exiftool
def test_update_keeps_everything_else(tmp_path: Path) -> None:
    photo = _jpeg(tmp_path / "q.jpg")
    side = tmp_path / "q.jpg.xmp"
    _exiftool("-q", "-o", str(side), "-XMP-dc:Subject=holiday", "-XMP-dc:Subject=beach",
              "-XMP-MP:RegionInfoMP={Regions=[{PersonDisplayName=Bob,Rectangle=0.1|, 0.2|, "
              "0.3|, 0.4}]}", "-XMP-mwg-rs:RegionInfo={RegionList=[{Name=Rex,Type=Pet,Area="
              "{X=0.7,Y=0.7,W=0.2,H=0.2,Unit=normalized}},{Name=Old,Type=Face,Area={X=0.5,"
              "Y=0.5,W=0.1,H=0.1,Unit=normalized}}]}", str(photo))  # fmt: skip
    os.chmod(side, 0o640)
    assert sidecar_for(photo) == side
    write_sidecar(photo, [Region(0.2, 0.3, 0.1, 0.1, "New")], 400, 300)
    first = side.read_bytes()
    write_sidecar(photo, [Region(0.2, 0.3, 0.1, 0.1, "New")], 400, 300)
    assert side.read_bytes() == first  # updating twice gives the same file
    assert (side.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.jpg", "q.jpg.xmp"]  # no temp file
    data = _exiftool("-j", "-struct", "-XMP:all", str(side))[0]
    assert data["Subject"] == ["holiday", "beach"]
    assert data["RegionInfoMP"]["Regions"][0]["PersonDisplayName"] == "Bob"
    regions = data["RegionInfo"]["RegionList"]
    assert [(r["Name"], r["Type"]) for r in regions] == [("Rex", "Pet"), ("New", "Face")]


def test_new_sidecar_takes_the_photo_permissions(tmp_path: Path) -> None:
    photo = _jpeg(tmp_path / "r.jpg")
    os.chmod(photo, 0o604)
    side = write_sidecar(photo, [Region(0.5, 0.5, 0.2, 0.2, "X")], 400, 300)
    assert side.stat().st_mode & 0o777 == 0o604
    (tmp_path / "s.xmp").write_bytes(side.read_bytes())
    assert sidecar_for(tmp_path / "s.jpg") == tmp_path / "s.xmp"  # an existing photo.xmp


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_frames(tmp_path: Path, orientation: int) -> None:
    """A bright block in the stored pixels is found where to_displayed puts it in the image
    faceprint decodes (orientation applied), and back."""
    stored = np.zeros((120, 200, 3), np.uint8)
    stored[20:50, 130:180] = 255  # rows 20-50, columns 130-180
    path = tmp_path / f"o{orientation}.png"
    img = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "PNG", exif=exif.tobytes())
    shown = load_image(path)
    rows, cols = np.nonzero(shown[..., 0] > 128)
    seen = Box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    got = to_displayed(Box(130, 20, 180, 50), 200, 120, orientation)
    assert got.as_list() == pytest.approx(seen.as_list(), abs=1)
    h, w = shown.shape[:2]
    assert to_stored(got, w, h, orientation).as_list() == pytest.approx([130, 20, 180, 50])
    r = Region(155 / 200, 35 / 120, 50 / 200, 30 / 120)  # the block, in stored fractions
    assert r.box(w, h, orientation, frame="stored").as_list() == pytest.approx(got.as_list())


HOSTILE = {
    "billion laughs": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>&c;</x:xmpmeta>",
    "external entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM '
    b'"file:///etc/passwd">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>',
    "deep": b"<a>" * 5000 + b"</a>" * 5000,
    "huge": b"<a>" + b" " * (5 << 20) + b"</a>",
    "broken": b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF>",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_refused(name: str) -> None:
    with pytest.raises(XmpError):
        read_regions(HOSTILE[name])
    if name != "empty":  # an empty sidecar is updated as a new one
        with pytest.raises(XmpError):
            update_regions(HOSTILE[name], [Region(0.5, 0.5, 0.1, 0.1)], 10, 10)


def test_nonsense_values_are_skipped_not_fatal() -> None:
    packet = update_regions(None, [Region(0.5, 0.5, 0.1, 0.1, "ok")], 10, 10)
    bad = packet.replace(b'stArea:x="0.5"', b'stArea:x="nan"', 1)
    assert read_regions(bad) == []
    assert [r.name for r in read_regions(packet)] == ["ok"]
    with pytest.raises(XmpError):
        update_regions(None, [Region(0.5, 0.5, 0.0, 0.1)], 10, 10)
    assert jpeg_xmp(b"not a jpeg") is None and jpeg_xmp(b"\xff\xd8\xff\xe1\x00") is None
