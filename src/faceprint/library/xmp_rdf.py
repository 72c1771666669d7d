"""Just enough RDF/XML for XMP face regions: a safe parser, property access, a serializer.

Parsing refuses anything hostile before it costs memory or time: packets over
:data:`MAX_BYTES`, any DTD (so no entity can be declared, let alone expanded, and nothing
external is fetched: ``defusedxml`` with ``forbid_dtd``), and nesting deeper than
:data:`MAX_DEPTH`. The serializer writes the namespace prefixes the document used, so an
updated sidecar reads like the one it replaced.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from faceprint.errors import FaceprintError

#: Largest XMP packet or sidecar read (bytes), and deepest element nesting accepted.
MAX_BYTES = 4 << 20
MAX_DEPTH = 48

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X = "adobe:ns:meta/"
#: Prefixes faceprint writes for the namespaces it uses.
PREFIXES = {
    X: "x",
    RDF: "rdf",
    "http://www.metadataworkinggroup.com/schemas/regions/": "mwg-rs",
    "http://ns.adobe.com/xap/1.0/sType/Dimensions#": "stDim",
    "http://ns.adobe.com/xmp/sType/Area#": "stArea",
    "http://ns.microsoft.com/photo/1.2/": "MP",
    "http://ns.microsoft.com/photo/1.2/t/RegionInfo#": "MPRI",
    "http://ns.microsoft.com/photo/1.2/t/Region#": "MPReg",
}


class XmpError(FaceprintError):
    """XMP that is malformed, too large, too deep, or hostile."""

    exit_code = 3


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def parse(data: bytes) -> tuple[ET.Element, dict[str, str]]:
    """The root element of an XMP packet or sidecar and its namespace prefixes (uri -> prefix)."""
    if len(data) > MAX_BYTES:
        raise XmpError(f"XMP of {len(data):,} bytes is larger than the {MAX_BYTES:,} accepted")
    prefixes: dict[str, str] = {}
    depth = 0
    root: ET.Element | None = None
    try:
        for event, item in iterparse(
            io.BytesIO(data), events=("start", "end", "start-ns"), forbid_dtd=True
        ):
            if event == "start-ns":
                prefix, uri = item
                prefixes.setdefault(uri, prefix or "ns")
            elif event == "start":
                depth += 1
                if root is None:
                    root = item
                if depth > MAX_DEPTH:
                    raise XmpError(f"XMP nested deeper than {MAX_DEPTH} elements is refused")
            else:
                depth -= 1
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise XmpError(f"XMP is not well-formed or not allowed: {exc}") from exc
    if root is None:
        raise XmpError("XMP packet is empty")
    return root, prefixes


def descriptions(root: ET.Element) -> list[ET.Element]:
    """Every top-level rdf:Description of a packet (x:xmpmeta/rdf:RDF or a bare rdf:RDF)."""
    rdf = root if root.tag == q(RDF, "RDF") else root.find(q(RDF, "RDF"))
    return [] if rdf is None else rdf.findall(q(RDF, "Description"))


def resources(prop: ET.Element) -> list[ET.Element]:
    """The elements that carry the fields of a struct-valued property: the property element
    itself (parseType="Resource" or attribute shorthand) and any rdf:Description inside."""
    return [prop, *prop.findall(q(RDF, "Description"))]


def field(struct: list[ET.Element], ns: str, name: str) -> ET.Element | str | None:
    """A struct field: its text when simple (attribute or element), its element otherwise."""
    tag = q(ns, name)
    for el in struct:
        if tag in el.attrib:
            return el.attrib[tag]
        child = el.find(tag)
        if child is not None:
            simple = not len(child) and not any(k != q(RDF, "parseType") for k in child.attrib)
            return (child.text or "").strip() if simple else child
    return None


def text(value: ET.Element | str | None) -> str | None:
    """A simple or language-alternative value as text."""
    if value is None or isinstance(value, str):
        return value
    li = value.find(f".//{q(RDF, 'li')}")
    if li is not None:
        return (li.text or "").strip()
    return (value.text or "").strip() or None


def items(value: ET.Element | str | None) -> list[ET.Element]:
    """The rdf:li of an rdf:Bag / rdf:Seq / rdf:Alt property value."""
    if not isinstance(value, ET.Element):
        return []
    out: list[ET.Element] = []
    for kind in ("Bag", "Seq", "Alt"):
        for container in value.findall(q(RDF, kind)):
            out.extend(container.findall(q(RDF, "li")))
    return out


def _names(root: ET.Element, prefixes: dict[str, str]) -> dict[str, str]:
    """uri -> prefix for every namespace the tree uses (document's, then faceprint's, then
    generated), never two uris on one prefix."""
    used: list[str] = []
    for el in root.iter():
        for name in (el.tag, *el.attrib):
            if name.startswith("{"):
                uri = name[1:].split("}", 1)[0]
                if uri not in used:
                    used.append(uri)
    out: dict[str, str] = {}
    taken: set[str] = {"xml"}
    for uri in used:
        for cand in (prefixes.get(uri), PREFIXES.get(uri)):
            if cand and cand not in taken:
                break
        else:
            n = len(taken)
            while f"ns{n}" in taken:
                n += 1
            cand = f"ns{n}"
        out[uri] = cand
        taken.add(cand)
    return out


def _qname(name: str, names: dict[str, str]) -> str:
    if not name.startswith("{"):
        return name
    uri, local = name[1:].split("}", 1)
    return f"{names[uri]}:{local}"


def _write(el: ET.Element, names: dict[str, str], indent: int, declare: bool) -> Iterator[str]:
    """Serialize iteratively enough for MAX_DEPTH (recursion depth is bounded by parse)."""
    pad = " " * indent
    attrs = "".join(f" {_qname(k, names)}={quoteattr(v)}" for k, v in el.attrib.items())
    if declare:
        attrs += "".join(f"\n    xmlns:{p}={quoteattr(u)}" for u, p in names.items())
    tag = _qname(el.tag, names)
    body = (el.text or "").strip()
    if not len(el):
        yield f"{pad}<{tag}{attrs}>{escape(body)}</{tag}>\n" if body else f"{pad}<{tag}{attrs}/>\n"
        return
    yield f"{pad}<{tag}{attrs}>\n"
    for child in el:
        yield from _write(child, names, indent + 1, False)
    yield f"{pad}</{tag}>\n"


def serialize(root: ET.Element, prefixes: dict[str, str]) -> bytes:
    """An XMP packet (xpacket wrapper, UTF-8) of ``root`` (x:xmpmeta)."""
    names = _names(root, prefixes)
    head = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    body = "".join(_write(root, names, 0, True))
    return (head + body + '<?xpacket end="w"?>\n').encode("utf-8")


def new_packet() -> ET.Element:
    """An empty x:xmpmeta / rdf:RDF / rdf:Description (rdf:about="")."""
    root = ET.Element(q(X, "xmpmeta"))
    rdf = ET.SubElement(root, q(RDF, "RDF"))
    ET.SubElement(rdf, q(RDF, "Description"), {q(RDF, "about"): ""})
    return root
