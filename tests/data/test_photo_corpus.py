"""The photo corpus scripts: licences from DEP-5 copyright files, photos read out of Qt resource
files with the licences of their credits README."""

from __future__ import annotations

import importlib.util
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paths import REPO

SCRIPTS = REPO / "scripts"


@pytest.fixture
def corpus(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # photo_corpus imports qt_resources beside it
    spec = importlib.util.spec_from_file_location("photo_corpus", SCRIPTS / "photo_corpus.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "photo_corpus", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_photo_corpus_licences_come_from_the_matching_copyright_stanza(tmp_path, corpus):
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 Someone\nLicense: GPL-2+\n\n"
        "Files: 16.04/Bridge_by_X.jpg\n 16.04/Dune_by_Y.jpg\nCopyright: 2018, X\n           2019, Y\n"
        "License: CC-BY-SA-4.0\n Attribution-ShareAlike ...\n\n"
        "Files: desktop/Stripes-*.png\nCopyright: 2014 Z\nLicense: CC0-1.0\n\n"
        "Files: debian/*\n AUTHORS\nCopyright: 2018, Packager\nLicense: Expat\n",
        encoding="utf-8")
    stanzas = corpus.parse_copyright(copyright_file)
    installed = Path("/usr/share/backgrounds")
    dune = corpus.licence_for(installed / "Dune_by_Y.jpg", stanzas)
    assert (dune.licence, dune.copyright) == ("CC-BY-SA-4.0", "2018, X 2019, Y")
    assert corpus.licence_for(installed / "desktop" / "Stripes-Dark.png", stanzas).licence == "CC0-1.0"
    assert corpus.licence_for(installed / "other" / "Stripes-Dark.png", stanzas).licence == "GPL-2+"
    assert corpus.licence_for(installed / "Unlisted.jpg", stanzas).licence == "GPL-2+"  # not debian/*


# -- a Qt resource file written from the format's description, independently of the reader ----------


def _qt_hash(name: str) -> int:
    """qt_hash of the name (the names section stores it; the reader must skip it, not use it)."""
    h = 0
    for ch in name:
        h = ((h << 4) + ord(ch)) & 0xFFFFFFFF
        h = (h ^ ((h & 0xF0000000) >> 23)) & 0x0FFFFFFF
    return h


def write_rcc(path: Path, files: dict[str, bytes], compress: set[str] = frozenset(), version: int = 3) -> None:
    """A binary resource like `rcc --binary`: tree nodes breadth first, each directory's children
    consecutive and sorted by name hash, as Qt lays them out."""
    root: dict = {}
    for name, blob in files.items():
        *folders, leaf = name.strip("/").split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = blob
    names, name_offsets = bytearray(), {}
    data = bytearray()

    def name_offset(name: str) -> int:
        if name not in name_offsets:
            name_offsets[name] = len(names)
            encoded = name.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(name), _qt_hash(name)) + encoded)
        return name_offsets[name]

    nodes = [("", root, "")]  # (name, content, full path), breadth first
    records = []
    i = 0
    while i < len(nodes):
        name, content, full = nodes[i]
        if isinstance(content, dict):
            children = sorted(content.items(), key=lambda kv: _qt_hash(kv[0]))
            records.append(("dir", name, len(children), len(nodes)))
            nodes += [(n, c, f"{full}/{n}") for n, c in children]
        else:
            blob = content
            flags = 0
            if full in compress:
                blob, flags = struct.pack(">I", len(content)) + zlib.compress(content), 1
            records.append(("file", name, flags, len(data)))
            data.extend(struct.pack(">I", len(blob)) + blob)
        i += 1
    tree = bytearray()
    for kind, name, a, b in records:
        offset = name_offset(name) if name else 0
        if kind == "dir":
            tree += struct.pack(">IHII", offset, 2, a, b)
        else:
            tree += struct.pack(">IHHHI", offset, a, 0x0C, 0x00, b)  # locale, data offset
        if version >= 2:
            tree += struct.pack(">Q", 0)  # modification time
    header = 24 if version >= 3 else 20
    tree_at, data_at = header, header + len(tree)
    names_at = data_at + len(data)
    out = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    if version >= 3:
        out += struct.pack(">I", 0)
    path.write_bytes(out + bytes(tree) + bytes(data) + bytes(names))


def _webp(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(buffer, "WEBP", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_qt_resource_reader_returns_every_file_byte_for_byte(tmp_path, version, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from qt_resources import ResourceError, read_resource

    files = {"/app/res/a.webp": _webp(0), "/app/res/deep/b.webp": _webp(1), "/app/res/README": b"text " * 40,
             "/app/other.qml": b"Item {}"}
    rcc = tmp_path / "x.rcc"
    write_rcc(rcc, files, compress={"/app/res/README", "/app/res/deep/b.webp"}, version=version)
    assert read_resource(rcc) == files
    (tmp_path / "bad.rcc").write_bytes(b"PK\x03\x04 not a resource")
    with pytest.raises(ResourceError, match="bad.rcc: not a Qt resource"):
        read_resource(tmp_path / "bad.rcc")
    (tmp_path / "cut.rcc").write_bytes(rcc.read_bytes()[:60])
    with pytest.raises(ResourceError, match="cut.rcc: truncated or corrupt"):
        read_resource(tmp_path / "cut.rcc")


def test_credits_readme_both_layouts(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from qt_resources import parse_credits

    text = ("Copyright: Someone, 2022\nLicense: CC-BY-SA 4.0\nFiles:\nkey.svg\negypt/egypt.svg\n\n"
            "Copyright: Daniel S\nLicense: CC-BY-SA 4.0\nSource: https://commons.wikimedia.org/wiki/File:X.jpg\n"
            "Files:\nwonders/x.webp\n\n"
            "Copyright: Urse O\nSource: https://example.org/y\nLicense: Public Domain\nComments: cropping, sharpening\n"
            "Files: y.webp\n\nCopyright: nobody\nFiles: nolicence.webp\n")
    credits = parse_credits(text)
    assert credits["wonders/x.webp"] == ("CC-BY-SA 4.0", "Daniel S")
    assert credits["y.webp"] == ("Public Domain", "Urse O")
    assert credits["egypt/egypt.svg"][1] == "Someone, 2022"
    assert "nolicence.webp" not in credits and "https://commons.wikimedia.org/wiki/File:X.jpg" not in credits


def test_photos_inside_a_qt_resource_keep_their_folder_and_credited_licence(tmp_path, corpus, monkeypatch):
    inside = "/gcompris/src/activities/zoo/resource"
    photos = {f"{inside}/giraffe.webp": _webp(2), f"{inside}/birds/heron.webp": _webp(3),
              f"{inside}/map.svg": b"<svg/>", f"{inside}/README": (
                  b"Copyright: A\nLicense: CC-BY-SA 4.0\nFiles: giraffe.webp\n\n"
                  b"Copyright: B\nLicense: Public Domain\nFiles:\nbirds/heron.webp\n")}
    extracted = tmp_path / "debs"
    (extracted / "pkg").mkdir(parents=True)
    write_rcc(extracted / "pkg" / "zoo.rcc", photos)
    monkeypatch.setattr(corpus, "QT_RESOURCE_SOURCES", {"pkg": {("zoo.rcc", inside): "README"}})
    rows = corpus.qt_resource_photos(extracted)
    by_name = {corpus.corpus_name(photo, source, extracted).as_posix(): (photo, licence, holder)
               for source, photo, _, licence, holder in rows}
    assert set(by_name) == {"zoo/giraffe.webp", "zoo/birds/heron.webp"}  # the SVG map is not a photo
    assert by_name["zoo/giraffe.webp"][1:] == ("CC-BY-SA-4.0", "A")
    assert by_name["zoo/birds/heron.webp"][1:] == ("public domain", "B")
    assert by_name["zoo/birds/heron.webp"][0].read_bytes() == photos[f"{inside}/birds/heron.webp"]

    # a photo the README does not credit stops the build, naming it; EXCLUDED lets it through
    photos[f"{inside}/cat.webp"] = _webp(4)
    write_rcc(extracted / "pkg" / "zoo.rcc", photos)
    with pytest.raises(SystemExit, match="no licence for .*/zoo/resource/cat.webp.*'zoo/cat.webp'"):
        corpus.qt_resource_photos(extracted)
    monkeypatch.setitem(corpus.EXCLUDED, ("pkg", "zoo/cat.webp"), "test: not a photo")
    assert len(corpus.qt_resource_photos(extracted)) == 2
