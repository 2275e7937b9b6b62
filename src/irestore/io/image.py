"""The decoded image, its errors, and the limits and format tables reading and writing share."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
)
DEFAULT_MAX_PIXELS: int = 100_000_000
# the largest output irestore writes: a 4x upscale of the largest input it reads by default
OUTPUT_MAX_PIXELS: int = 16 * DEFAULT_MAX_PIXELS
_BYTES_PER_PIXEL = 8  # 16-bit RGBA, uncompressed: the most an image file can need per pixel
_HEADER_BYTES = 1 << 20  # room for headers, ICC profiles and EXIF beside the pixels

_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP")
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG"}  # MPO: multi-picture JPEG
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
_DEEP_FORMATS = frozenset({"PNG", "TIFF"})
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}
_GRAY_MODES = frozenset({"1", "L", "LA", "La"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as Pillow's "L"

_ORIENTATION = 0x0112
_SUB_IFDS = (0x8769, 0x8825)  # Exif, GPS
# Tags that describe a TIFF file's own layout, resolution (carried as dpi) or blobs carried
# elsewhere (ICC) or not at all (XMP, IPTC, Photoshop): not kept as EXIF.
_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 282, 283, 284, 296, 317,
     320, 322, 323, 324, 325, 338, 339, 513, 514, 530, 531, 532, 700, 33723, 34377, 34675}
)
# Orientation tag value -> the transform that makes stored pixels upright.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IDAT_SIZE = 1 << 24


class ImageError(Exception):
    """A file that cannot be read, or an image that cannot be written as asked."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(path, reason)  # both in args, so the error pickles across processes
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Image:
    """Decoded pixels plus what is needed to write them back in kind."""

    rgb: np.ndarray  # float32 HxWx3 in [0, 1], upright
    alpha: np.ndarray | None = None  # HxW, uint8 or uint16 as in the file
    bit_depth: int = 8  # per channel: 8 or 16
    format: str = "PNG"  # PNG | JPEG | TIFF | WEBP | BMP
    grayscale: bool = False  # one colour channel in the file; written back as grey
    icc_profile: bytes | None = None
    exif: bytes | None = None  # Orientation reset to 1
    source: Path | None = None
    dpi: tuple[float, float] | None = None
    lossless: bool = True  # the source was losslessly coded; picks lossless WebP on write
    colour_mode: str = "RGB"  # CMYK or P (palette) when the file was, and written back so where the format can
    palette_colours: int = 256  # colours in the palette of a P source


@dataclass(frozen=True)
class _Meta:
    format: str
    bit_depth: int
    grayscale: bool
    icc_profile: bytes | None
    exif: bytes | None
    orientation: int
    dpi: tuple[float, float] | None
    lossless: bool
    colour_mode: str = "RGB"
    palette_colours: int = 256




def portable_exif(path: Path, src: PILImage.Exif, *, sub_ifds: bool) -> bytes | None:
    """EXIF without layout tags or thumbnail, Orientation 1; None if nothing is left."""
    out = PILImage.Exif()
    for tag, value in src.items():
        if tag not in _LAYOUT_TAGS and tag not in _SUB_IFDS:
            out[tag] = value
    if _ORIENTATION in out:
        out[_ORIENTATION] = 1
    for ifd in _SUB_IFDS if sub_ifds else ():
        if entries := src.get_ifd(ifd):
            out.get_ifd(ifd).update(entries)
    if not len(out) and not any(out.get_ifd(ifd) for ifd in _SUB_IFDS):
        return None
    try:
        return out.tobytes()
    except Exception as exc:  # Pillow cannot re-encode some vendor tags
        log.warning("%s: dropping EXIF that cannot be re-encoded (%s)", path, exc)
        return None
