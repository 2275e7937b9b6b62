"""Read the files of a compiled Qt resource file (`.rcc`) and the credits files next to them.

Some Debian packages (gcompris-qt-data) ship their photos only inside `.rcc` files. The format
(qtbase's src/corelib/io/qresource.cpp, `rcc --binary`): a header ``b"qres"``, format version,
and the offsets of three sections. The tree section holds fixed-size nodes (14 bytes in
version 1, 22 from version 2 on, which adds a modification time): a name offset, flags, then
for a directory its child count and first child index, for a file its locale and data offset.
The names section holds each name as a 16-bit length, a 32-bit hash and UTF-16BE characters;
the data section each file as a 32-bit length and its bytes, zlib-compressed with a 32-bit
uncompressed-size prefix when the node's flag 1 is set, zstd-compressed when flag 4 is.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4


class ResourceError(ValueError):
    """A file that is not a Qt resource file, or one this reader cannot decode."""


def read_resource(path: Path) -> dict[str, bytes]:
    """Every file in the resource, by its path inside it (``/folder/name``), decompressed."""
    buf = path.read_bytes()
    if buf[:4] != b"qres" or len(buf) < 20:
        raise ResourceError(f"{path}: not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack_from(">IIII", buf, 4)
    node_size = 22 if version >= 2 else 14
    files: dict[str, bytes] = {}

    def name_at(offset: int) -> str:
        length, = struct.unpack_from(">H", buf, names + offset)
        start = names + offset + 6  # after the length and the 32-bit hash
        return buf[start : start + 2 * length].decode("utf-16-be")

    def visit(index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise ResourceError(f"{path}: the resource tree is deeper than 64 folders (corrupt?)")
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", buf, node)
        name = name_at(name_offset) if index else ""
        if flags & DIRECTORY:
            count, first = struct.unpack_from(">II", buf, node + 6)
            for child in range(first, first + count):
                visit(child, f"{prefix}{name}/" if index else "/", depth + 1)
            return
        data_offset, = struct.unpack_from(">I", buf, node + 10)
        length, = struct.unpack_from(">I", buf, data + data_offset)
        blob = buf[data + data_offset + 4 : data + data_offset + 4 + length]
        if flags & COMPRESSED_ZSTD:
            raise ResourceError(f"{path}: {prefix}{name} is zstd-compressed, which this reader does not decode")
        if flags & COMPRESSED:
            blob = zlib.decompress(blob[4:])  # after the uncompressed-size prefix
        files[prefix + name] = blob

    try:
        visit(0, "", 0)
    except (struct.error, zlib.error) as error:
        raise ResourceError(f"{path}: truncated or corrupt resource ({error})") from error
    return files


_FIELD = re.compile(r"^([A-Z][A-Za-z-]*):\s*(.*)$")


def parse_credits(text: str) -> dict[str, tuple[str, str]]:
    """File name -> (licence, copyright holder) from a credits README as gcompris writes them:
    blocks separated by blank lines with ``Copyright:``, ``License:``, ``Source:`` and ``Files:``
    fields, the file names either after ``Files:`` or on the lines below it."""
    credits: dict[str, tuple[str, str]] = {}
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        files: list[str] = []
        name = None
        for line in block.splitlines():
            match = _FIELD.match(line.strip())
            if match:
                name, value = match.group(1).lower(), match.group(2).strip()
                fields[name] = value
                if name == "files" and value:
                    files += value.split()
            elif name == "files" and line.strip():
                files += line.split()
        if "license" in fields and files:
            for file in files:
                credits[file] = (fields["license"], fields.get("copyright", ""))
    return credits
