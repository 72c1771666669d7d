"""Hostile HTTP requests for tests/test_hostile_http.py: each a :class:`Probe` (method,
URL, request keywords for httpx, the statuses it may be answered with), built at test time
(nothing binary is committed). Plain Python, no pytest inside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests import hostile
from tests.conftest import FACES
from tests.servicetools import MAX_UPLOAD, photo

#: The statuses the README documents for errors (a 2xx where a request is in fact valid).
DOCUMENTED = {401, 403, 404, 405, 409, 413, 415, 422, 429}
#: Bad values for a name in a URL path (percent-encoded as sent).
BAD_NAMES = {
    "nul": "a%00b",
    "nul_only": "%00",
    "newline": "a%0Ab",
    "invalid_utf8": "%FF%FE",
    "overlong_utf8": "%C0%AE%C0%AE",
    "traversal": "..%2F..%2Fetc",
    "very_long": "n" * 5000,
    "bidi_override": "%E2%80%AEevil",
    "space_only": "%20",
}
#: Bad values for a form field or JSON string.
BAD_STRINGS = {
    "nul": "t\x00",
    "control": "a\x01b",
    "very_long": "x" * 100_000,
    "lone_surrogate_escape": "\\ud800",
    "empty": "",
}
BAD_NUMBERS = ["nan", "inf", "-inf", "1e309", "-1", "0", "99999999999999999999999", "0x10",
               "\x00", "1\x00", "", "1.5", " 2 "]  # fmt: skip
JSON = {"content-type": "application/json"}
COLLECTION = "hostile"


@dataclass
class Probe:
    """One request and the statuses it may be answered with."""

    label: str
    method: str
    url: str
    allowed: set[int] = field(default_factory=lambda: DOCUMENTED)
    kw: dict[str, Any] = field(default_factory=dict)


def _photo(name: str = "img1.jpg") -> tuple[str, bytes, str]:
    return photo(name)


def path_probes(team: str) -> list[Probe]:
    """Every templated route with each bad name in each path parameter."""
    img = {"file": _photo()}
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("DELETE", "/collections/{c}", {}),
        ("GET", "/collections/{c}/people", {}),
        ("POST", "/collections/{c}/people/{p}/faces", {"files": [("files", _photo())]}),
        ("GET", "/collections/{c}/people/{p}/faces", {}),
        ("DELETE", "/collections/{c}/people/{p}/faces/1", {}),
        ("DELETE", "/collections/{c}/people/{p}", {}),
        ("POST", "/collections/{c}/identify", {"files": img}),
    ]
    probes = []
    for method, template, kw in routes:
        params = [k for k in ("c", "p") if "{" + k + "}" in template]
        for param in params:
            for label, bad in BAD_NAMES.items():
                values = {"c": team, "p": "mark", param: bad}
                url = template.format(**values)
                probes.append(Probe(f"{method}_{template}_{param}_{label}", method, url,
                                    {404, 422}, kw))  # fmt: skip
    probes += [
        Probe("root_nul", "GET", "/%00", {404}),
        Probe("unknown_route", "GET", "/no/such/route", {404}),
        Probe("wrong_method", "PUT", "/collections", {405}),
        Probe("patch_detect", "PATCH", "/detect", {405}),
        Probe("query_nul", "GET", "/collections?x=%00&y=%FF", {200}),
        Probe("template_id_text", "DELETE", f"/collections/{team}/people/mark/faces/x", {422}),
        Probe("template_id_huge", "DELETE", f"/collections/{team}/people/mark/faces/"
              + "9" * 30, {422}),
        Probe("template_id_negative", "DELETE", f"/collections/{team}/people/mark/faces/-1",
              {422}),
        Probe("template_id_nul", "DELETE", f"/collections/{team}/people/mark/faces/1%00", {422}),
        Probe("template_id_unknown", "DELETE", f"/collections/{team}/people/mark/faces/999999",
              {404}),
    ]  # fmt: skip
    return probes


def json_probes() -> list[Probe]:
    raw: dict[str, bytes] = {
        "malformed": b"not json",
        "truncated": b'{"name": "x',
        "deep_arrays": b"[" * 100_000,
        "deep_objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "a_list": b"[1, 2]",
        "a_string": b'"team"',
        "null": b"null",
        "name_number": b'{"name": 5}',
        "name_null": b'{"name": null}',
        "name_nul": b'{"name": "x\\u0000y"}',
        "name_lone_surrogate": b'{"name": "\\ud800"}',
        "name_invalid_utf8": b'{"name": "\xff\xfe"}',
        "name_nan": b'{"name": NaN}',
        "name_huge": b'{"name": "' + b"x" * 200_000 + b'"}',
        "name_object": b'{"name": {"$gt": ""}}',
        "huge_integer": b'{"name": ' + b"9" * 5000 + b"}",
        "empty": b"",
        "nul_bytes": b"\x00" * 64,
        "duplicate_keys": b'{"name": "a\\u0000", "name": "b\\u0000"}',
    }
    probes = [Probe(f"json_{k}", "POST", "/collections", {413, 422},
                    {"content": v, "headers": JSON}) for k, v in raw.items()]  # fmt: skip
    probes += [
        Probe("json_as_text_plain", "POST", "/collections", {415, 422},
              {"content": b'{"name": "x"}', "headers": {"content-type": "text/plain"}}),
        Probe("json_as_multipart", "POST", "/collections", {415, 422},
              {"files": {"name": ("n", b"x", "text/plain")}}),
    ]  # fmt: skip
    return probes


MULTIPART = "multipart/form-data; boundary=x"


def _part(name: str, body: bytes, filename: str | None = "a.jpg", extra: bytes = b"") -> bytes:
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (b"--x\r\nContent-Disposition: " + disp.encode("utf-8", "surrogateescape")
            + b"\r\n" + extra + b"Content-Type: image/jpeg\r\n\r\n" + body + b"\r\n")  # fmt: skip


def multipart_probes(team: str) -> list[Probe]:
    jpeg = (FACES / "img1.jpg").read_bytes()
    end = b"--x--\r\n"
    bodies: dict[str, tuple[bytes, str]] = {
        "no_boundary": (_part("file", jpeg) + end, "multipart/form-data"),
        "wrong_boundary": (_part("file", jpeg) + end, "multipart/form-data; boundary=y"),
        "truncated": (_part("file", jpeg)[: len(jpeg) // 2], MULTIPART),
        "no_closing": (_part("file", jpeg), MULTIPART),
        "no_disposition": (b"--x\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n" + end,
                           MULTIPART),
        "garbage": (b"\x00\xff" * 5000, MULTIPART),
        "empty": (b"", MULTIPART),
        "only_end": (end, MULTIPART),
        "nul_in_field_name": (_part("fi\x00le", jpeg) + end, MULTIPART),
        "nul_in_filename": (_part("file", jpeg, "a\x00.jpg") + end, MULTIPART),
        "traversal_filename": (_part("file", jpeg, "../../../etc/passwd") + end, MULTIPART),
        "invalid_utf8_filename": (_part("file", jpeg, "\udcff\udcfe.jpg") + end, MULTIPART),
        "huge_part_header": (_part("file", jpeg, extra=b"X-Pad: " + b"a" * 200_000 + b"\r\n")
                             + end, MULTIPART),
        "5000_fields": (b"".join(_part(f"f{i}", b"1", None) for i in range(5000))
                        + _part("file", jpeg) + end, MULTIPART),
        "2000_files": (b"".join(_part("file", b"x") for _ in range(2000)) + end, MULTIPART),
        "file_as_text_field": (_part("file", b"hello", None) + end, MULTIPART),
        "big_text_field": (_part("attributes", b"a" * (2 * 1024 * 1024), None)
                           + _part("file", jpeg) + end, MULTIPART),
        "empty_file": (_part("file", b"") + end, MULTIPART),
        "charset_nonsense": (_part("file", jpeg) + end, MULTIPART + "; charset=nonsense-8"),
    }  # fmt: skip
    probes = []
    for url in ("/detect", f"/collections/{team}/identify", "/verify",
                f"/collections/{team}/people/mark/faces"):  # fmt: skip
        for label, (body, ctype) in bodies.items():
            if url != "/detect" and label not in (
                "truncated",
                "nul_in_field_name",
                "garbage",
                "2000_files",
                "5000_fields",
                "no_boundary",
            ):
                continue  # the multipart parser is shared: a few per endpoint elsewhere
            probes.append(
                Probe(
                    f"multipart_{url}_{label}",
                    "POST",
                    url,
                    {413, 415, 422},
                    {"content": body, "headers": {"content-type": ctype}},
                )
            )
    # a file with an odd filename is still a photo: a valid request (200)
    for label in ("nul_in_filename", "traversal_filename", "invalid_utf8_filename",
                  "charset_nonsense"):  # fmt: skip
        next(p for p in probes if p.label == f"multipart_/detect_{label}").allowed = {200}
    return probes


def field_probes(team: str) -> list[Probe]:
    """Form fields with NUL bytes, odd numbers and strings, on the recognition routes."""
    a, ident, probes = _photo(), f"/collections/{team}/identify", []
    for label, value in BAD_STRINGS.items():
        probes += [
            Probe(f"verify_collection_{label}", "POST", "/verify", {404, 422},
                  {"files": {"a": a}, "data": {"collection": value, "person": "mark"}}),
            Probe(f"verify_person_{label}", "POST", "/verify", {404, 422},
                  {"files": {"a": a}, "data": {"collection": team, "person": value}}),
            Probe(f"detect_attributes_{label}", "POST", "/detect", {200, 422},
                  {"files": {"file": a}, "data": {"attributes": value}}),
        ]  # fmt: skip
    for i, value in enumerate(BAD_NUMBERS):
        probes += [
            Probe(f"identify_top_k_{i}", "POST", ident, {200, 422},
                  {"files": {"file": a}, "data": {"top_k": value}}),
            Probe(f"identify_fmr_{i}", "POST", ident, {200, 422},
                  {"files": {"file": a}, "data": {"fmr": value}}),
            Probe(f"verify_fmr_{i}", "POST", "/verify", {200, 422},
                  {"files": {"a": a, "b": a}, "data": {"fmr": value}}),
        ]  # fmt: skip
    probes += [
        Probe("verify_neither", "POST", "/verify", {422}, {"files": {"a": a}}),
        Probe("verify_both", "POST", "/verify", {422},
              {"files": {"a": a, "b": a}, "data": {"collection": team, "person": "mark"}}),
        Probe("verify_unknown_person", "POST", "/verify", {404},
              {"files": {"a": a}, "data": {"collection": team, "person": "nobody"}}),
        Probe("faces_11_files", "POST", f"/collections/{team}/people/x/faces", {413},
              {"files": [("files", a)] * 11}),
        Probe("faces_no_files", "POST", f"/collections/{team}/people/x/faces", {422},
              {"data": {"files": "x"}}),
    ]  # fmt: skip
    return probes


def image_probes(team: str, corpus: list[hostile.Case]) -> list[Probe]:
    """Each hostile image to /detect (and a few to the other routes): decoded (200, or 422
    without a face where a face is needed), or refused: 415 not an image, 413 too large."""
    probes = []
    for case in corpus:
        if case.skip or not case.path.is_file() or case.path.is_symlink():
            continue
        data = case.path.read_bytes()[: MAX_UPLOAD + 1]
        allowed = {200} if case.ok else {415}
        if len(data) > MAX_UPLOAD:
            allowed = {413}
        file = ("upload.jpg", data, "image/jpeg")
        probes.append(Probe(f"image_detect_{case.name}", "POST", "/detect", allowed,
                            {"files": {"file": file}}))  # fmt: skip
        if case.category in ("exif", "bomb", "corrupt"):
            faces = allowed if not case.ok else {200, 422}
            probes += [
                Probe(f"image_identify_{case.name}", "POST", f"/collections/{team}/identify",
                      faces, {"files": {"file": file}}),
                Probe(f"image_verify_{case.name}", "POST", "/verify", faces,
                      {"files": {"a": file}, "data": {"collection": team, "person": "mark"}}),
                Probe(f"image_enroll_{case.name}", "POST", f"/collections/{team}/people/"
                      f"img-{case.name[:40]}/faces", {201, 409, 422} if case.ok else allowed,
                      {"files": [("files", file)]}),
            ]  # fmt: skip
    return probes


def library_probes(team: str) -> list[Probe]:
    """The photo-library routes: bad names in the path and query, bad ids, bad JSON bodies.
    The collection has no indexed photos, so a valid-looking request finds nothing (404)."""
    lib = f"/collections/{team}/library"
    probes = []
    for label, bad in BAD_NAMES.items():
        probes += [
            Probe(f"library_people_c_{label}", "GET", f"/collections/{bad}/library/people",
                  {404, 422}),
            Probe(f"library_photos_person_{label}", "GET", f"{lib}/photos?person={bad}",
                  {200, 404, 422}),
            Probe(f"library_name_c_{label}", "POST", f"/collections/{bad}/library/name",
                  {404, 422}, {"json": {"cluster": 1, "name": "x"}}),
        ]  # fmt: skip
    ids = ["-1", "x", "9" * 30, "1%00", "1e3", "4611686018427387905"]
    probes += [Probe(f"library_thumbnail_{i}", "GET", f"{lib}/faces/{v}/thumbnail", {422})
               for i, v in enumerate(ids)]  # fmt: skip
    probes += [
        Probe("library_thumbnail_size_0", "GET", f"{lib}/faces/1/thumbnail?size=0", {422}),
        Probe("library_thumbnail_unknown", "GET", f"{lib}/faces/999/thumbnail", {404}),
    ]
    bodies: dict[str, tuple[str, object]] = {
        "name_nul": ("name", {"cluster": 1, "name": "a\u0000b"}),
        "name_bidi": ("name", {"cluster": 1, "name": "\u202eevil"}),
        "name_huge_id": ("name", {"cluster": 2**70, "name": "x"}),
        "name_float_id": ("name", {"cluster": 1.5, "name": "x"}),
        "name_string_id": ("name", {"cluster": "1", "name": "x"}),
        "name_list": ("name", [1, 2]),
        "merge_negative": ("merge", {"a": -1, "b": 2}),
        "merge_missing": ("merge", {"a": 1}),
        "split_empty": ("split", {"cluster": 1, "faces": []}),
        "split_too_many": ("split", {"cluster": 1, "faces": list(range(5000))}),
        "split_nested": ("split", {"cluster": 1, "faces": [[1]]}),
        "move_neither": ("move", {"face": 1}),
        "move_control": ("move", {"face": 1, "person": "a\u0001b"}),
        "not_unknown": ("not", {"face": 999, "person": "x"}),
        "hide_undo_text": ("hide", {"face": 1, "undo": "maybe"}),
        "hide_unknown": ("hide", {"face": 999}),
    }
    probes += [Probe(f"library_{k}", "POST", f"{lib}/{route}", {404, 409, 422}, {"json": body})
               for k, (route, body) in bodies.items()]  # fmt: skip
    probes += [Probe(f"library_{r}_malformed", "POST", f"{lib}/{r}", {422},
                     {"content": b"{" * 50_000, "headers": JSON})
               for r in ("name", "merge", "split", "move", "not", "hide")]  # fmt: skip
    return probes
