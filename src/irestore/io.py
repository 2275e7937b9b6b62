"""Faithful image I/O: the only place where files become pixels and pixels become files.

Inside irestore an image is float32 RGB in [0, 1]. `read_image` decodes a file completely
(truncation is an error), applies the EXIF orientation and keeps what is needed to write the
restored pixels back in kind; `write_image` does that through a temporary file that is renamed
into place, so a target is either complete or untouched.

What a round trip keeps (read, then write in the same format):

======  =====  ===  =====  =====  =========  ===
format  depth  ICC  EXIF   alpha  grayscale  dpi
======  =====  ===  =====  =====  =========  ===
PNG     8, 16  yes  yes    yes    yes        yes
JPEG    8      yes  yes    no     yes        yes
WEBP    8      yes  yes    yes    no (RGB)   no
TIFF    8      yes  IFD0   yes    yes        yes
TIFF    16     yes  no     yes    yes [1]    yes
BMP     8      no   no     no     yes        yes
======  =====  ===  =====  =====  =========  ===

- Pixels are exact for PNG, TIFF, BMP and lossless WebP; JPEG and lossy WebP are re-encoded
  (``jpeg_quality``, 4:4:4). A WebP source that was lossless (VP8L) is written lossless.
- EXIF: the Orientation tag is reset to 1 because the pixels are upright; the thumbnail
  (IFD1) and TIFF layout tags are dropped. TIFF output keeps only IFD0 tags (Make, Model,
  DateTime, ...): Pillow's libtiff writer cannot store the Exif/GPS sub-IFDs. 16-bit TIFF is
  written with tifffile, which keeps ICC and dpi but no EXIF. XMP is not carried.
- 16-bit PNG is read with OpenCV and encoded here (zlib, "Up" filter), because OpenCV cannot
  write grey+alpha nor, before 5.0, ICC/EXIF. 16-bit PNG and TIFF stay 16-bit; JPEG, WebP and
  BMP are 8-bit. [1] 16-bit grey+alpha TIFF is written as RGBA (no common reader, Pillow and
  OpenCV included, decodes 16-bit grey+alpha TIFF).
- Palette images are restored in RGB and written back as palette images (an adaptive palette
  with as many colours, undithered) to PNG, BMP and TIFF; with palette transparency they become
  RGBA. 1-bit becomes 8-bit grey. CMYK is converted to RGB with Pillow's plain formula and
  written back to CMYK (JPEG, TIFF) with its inverse; its CMYK ICC profile is dropped.
- An ICC profile is attached only where its colour space (GRAY or RGB) matches what is
  written. Alpha is carried untouched; if the restored image has another size (upscaling),
  alpha is resized to it. JPEG and BMP cannot hold alpha: writing an image that has alpha
  to them is an `ImageError` unless the caller names the format, which drops the alpha.
- `read_image` checks the pixel count itself, before decoding, against ``max_pixels`` (and the
  file size against what such an image can need, before reading it). Pillow's process-wide
  ``MAX_IMAGE_PIXELS`` guard stays as it is for other code; only these reads go past it.
"""

from __future__ import annotations

import glob
import io
import logging
import os
import secrets
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "Image",
    "ImageError",
    "atomic_path",
    "atomic_write_text",
    "image_to_tensor",
    "list_images",
    "read_image",
    "tensor_to_rgb",
    "verify_image",
    "write_image",
]

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


# ---------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Decode an image file fully; every bad-input case raises `ImageError`."""
    path = Path(path)
    pixels, alpha, meta = _decode(path, max_pixels)
    upright = _UPRIGHT.get(meta.orientation, lambda a: a)
    return Image(
        rgb=_to_float_rgb(upright(pixels)),
        alpha=None if alpha is None else np.array(upright(alpha)),
        bit_depth=meta.bit_depth,
        format=meta.format,
        grayscale=meta.grayscale,
        icc_profile=meta.icc_profile,
        exif=meta.exif,
        source=path,
        dpi=meta.dpi,
        lossless=meta.lossless,
        colour_mode=meta.colour_mode,
        palette_colours=meta.palette_colours,
    )


def pixel_count(path: str | os.PathLike[str]) -> int:
    """Width x height from the file's header (nothing decoded); 0 when the header cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)  # read_image applies --max-pixels
            with PILImage.open(path) as im:
                return im.size[0] * im.size[1]
    except Exception:  # noqa: BLE001 (a bad file is reported when it is decoded; here it only weighs 0)
        return 0


def verify_image(path: str | os.PathLike[str], max_pixels: int = OUTPUT_MAX_PIXELS) -> bool:
    """True if the file decodes completely (the limit is an output's: outputs may be upscaled)."""
    try:
        _decode(Path(path), max_pixels=max_pixels)
    except ImageError:
        return False
    return True


def _decode(path: Path, max_pixels: int | None) -> tuple[np.ndarray, np.ndarray | None, _Meta]:
    """Raw pixels (uint8/uint16, HxW or HxWx3, as stored), alpha and metadata."""
    data = _read_bytes(path, max_pixels)
    with _open_pil(path, data) as im:
        fmt = _supported_format(path, im)
        _check_pixels(path, im.size, max_pixels)
        with _decode_errors(path, fmt):
            depth = _bit_depth(path, fmt, im, data)
            if depth == 16:
                pixels, alpha, grayscale = _cv2_pixels(path, fmt, im, data)
                icc = im.info.get("icc_profile")
            else:
                pixels, alpha, grayscale, icc = _pil_pixels(im, fmt, data)
            exif, orientation = _read_exif(path, im)
            meta = _Meta(fmt, depth, grayscale, icc or None, exif, orientation, _dpi(im),
                         _is_lossless(fmt, data), *_colour_mode(im, alpha))
    return pixels, alpha, meta


def _colour_mode(im: PILImage.Image, alpha: np.ndarray | None) -> tuple[str, int]:
    """CMYK, or P for an opaque palette image (with its colour count), to be written back in kind;
    RGB otherwise (a palette with transparency is written as RGBA)."""
    if im.mode == "CMYK":
        return "CMYK", 256
    if im.mode == "P" and alpha is None:
        return "P", len(im.getcolors(256) or ()) or 256
    return "RGB", 256


def _read_bytes(path: Path, max_pixels: int | None) -> bytes:
    """The whole file, once its size shows it can hold an image within ``max_pixels``."""
    try:
        size = path.stat().st_size
        if max_pixels is not None and size > max_pixels * _BYTES_PER_PIXEL + _HEADER_BYTES:
            raise ImageError(path, f"file is {size} bytes, more than an image of --max-pixels {max_pixels} can need")
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(path, _os_error_reason(path, exc)) from exc
    if not data:
        raise ImageError(path, "file is empty (0 bytes)")
    return data


def _os_error_reason(path: Path, exc: OSError) -> str:
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        return "is a directory, not an image file"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read file ({exc.strerror or exc})"


@contextmanager
def _open_pil(path: Path, data: bytes) -> Iterator[PILImage.Image]:
    """Pillow's lazy open: format, size and metadata without decoding pixels."""
    try:
        im = _open_past_pillow_guard(data)
    except Exception as exc:  # plugins raise assorted errors on malformed headers
        unidentified = isinstance(exc, UnidentifiedImageError)
        kind = _sniff(data)
        if kind:
            detail = "header unreadable" if unidentified else exc
            reason = f"truncated or corrupt {kind} data ({detail})"
        else:
            reason = "not an image file" if unidentified else f"corrupt image header ({exc})"
        raise ImageError(path, reason) from exc
    with im:
        yield im


def _open_past_pillow_guard(data: bytes) -> PILImage.Image:
    """``Image.open`` without Pillow's global decompression-bomb limit (the caller checks the
    pixel count against its own limit): its warning is silenced and, past twice its limit, where
    Image.open refuses, the format's plugin opens the header directly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            return PILImage.open(io.BytesIO(data))
        except PILImage.DecompressionBombError:
            pass
    for factory, accept in PILImage.OPEN.values():
        if accept is None or accept(data[:16]):
            with suppress(SyntaxError, IndexError, TypeError, struct.error):
                return factory(io.BytesIO(data), "")
    raise UnidentifiedImageError("no Pillow plugin opens this header")


@contextmanager
def _decode_errors(path: Path, fmt: str) -> Iterator[None]:
    """Turn any decoder failure into an ImageError; decoders raise many exception types."""
    try:
        yield
    except (ImageError, MemoryError):
        raise
    except Exception as exc:
        raise ImageError(path, f"truncated or corrupt {fmt} data ({exc})") from exc


def _sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


def _supported_format(path: Path, im: PILImage.Image) -> str:
    fmt = _FORMAT_ALIASES.get(im.format or "", im.format or "")
    if fmt not in _FORMATS:
        supported = ", ".join(_FORMATS)
        raise ImageError(path, f"unsupported image format {im.format} (supported: {supported})")
    return fmt


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        pixels = f"{width * height} pixels ({width}x{height})"
        raise ImageError(path, f"image has {pixels}, more than --max-pixels {max_pixels}")


def _bit_depth(path: Path, fmt: str, im: PILImage.Image, data: bytes) -> int:
    """8 or 16 per channel (1-, 2- and 4-bit images decode as 8-bit)."""
    if fmt == "PNG":
        return 16 if data[24] == 16 else 8  # IHDR is the first chunk; byte 24 is its bit depth
    if fmt != "TIFF":
        return 8
    bits = set(_as_tuple(im.tag_v2.get(258, 1)))
    if set(_as_tuple(im.tag_v2.get(339, 1))) != {1}:
        raise ImageError(path, "unsupported TIFF sample format (floating-point or signed)")
    if bits <= {1, 2, 4, 8}:
        return 8
    if bits == {16}:
        return 16
    raise ImageError(path, f"unsupported TIFF bit depth {sorted(bits)}")


def _as_tuple(value: object) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _pil_pixels(
    im: PILImage.Image, fmt: str, data: bytes
) -> tuple[np.ndarray, np.ndarray | None, bool, bytes | None]:
    """8-bit decode with Pillow: (grey HxW or RGB HxWx3, alpha, grayscale, ICC)."""
    im.load()
    if fmt == "PNG":  # load() stops at the pixels; verify() checks every chunk up to IEND
        _open_past_pillow_guard(data).verify()
    icc = im.info.get("icc_profile")
    if im.mode == "CMYK":
        im, icc = im.convert("RGB"), None
    grayscale = im.mode in _GRAY_MODES
    has_alpha = im.mode in _ALPHA_MODES or "transparency" in im.info
    target = ("LA" if has_alpha else "L") if grayscale else ("RGBA" if has_alpha else "RGB")
    arr = np.asarray(im if im.mode == target else im.convert(target))
    if not has_alpha:
        return arr, None, grayscale, icc
    color = arr[..., 0] if grayscale else arr[..., :3]
    return color, arr[..., -1], grayscale, icc


def _cv2_pixels(
    path: Path, fmt: str, im: PILImage.Image, data: bytes
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """16-bit decode with OpenCV (Pillow has no 16-bit RGB modes): (colour, alpha, grayscale)."""
    if fmt == "TIFF":
        data = _tiff_orientation_neutral(data)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(path, f"truncated or corrupt {fmt} data")
    if fmt == "PNG":
        grayscale, samples = data[25] in (0, 4), None  # IHDR colour type 0/4: grey(+alpha)
    else:
        photometric, samples = im.tag_v2.get(262), im.tag_v2.get(277, 1)
        if photometric not in (1, 2):
            reason = f"unsupported 16-bit TIFF photometric interpretation {photometric}"
            raise ImageError(path, reason)
        grayscale = photometric == 1
    got = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype != np.uint16 or (samples is not None and got != samples):
        layout = f"{samples or got} samples per pixel"
        raise ImageError(path, f"unsupported 16-bit {fmt} layout ({layout})")
    color = arr if arr.ndim == 2 else arr[..., 2::-1]  # BGR(A) -> RGB
    if grayscale and color.ndim == 3:
        color = color[..., 0]  # OpenCV expands grey+alpha PNG to BGRA
    return color, arr[..., 3] if got == 4 else None, grayscale


def _tiff_orientation_neutral(data: bytes) -> bytes:
    """The TIFF with its first IFD's Orientation set to 1 (a copy, only if it was not 1).

    OpenCV 5 applies a TIFF's orientation even with IMREAD_UNCHANGED; read_image applies it
    itself, the same way for every decoder, so OpenCV must see the stored pixel order.
    """
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", data, 2)[0] == 43  # BigTIFF: 64-bit offsets
    ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
    count = struct.unpack_from(order + ("Q" if big else "H"), data, ifd)[0]
    first, size = ifd + (8 if big else 2), (20 if big else 12)
    for entry in range(first, first + count * size, size):
        if struct.unpack_from(order + "H", data, entry)[0] != _ORIENTATION:
            continue
        value_at = entry + (12 if big else 8)  # SHORT value, left-justified in the field
        if struct.unpack_from(order + "H", data, value_at)[0] == 1:
            return data
        patched = bytearray(data)
        struct.pack_into(order + "H", patched, value_at, 1)
        return bytes(patched)
    return data


def _read_exif(path: Path, im: PILImage.Image) -> tuple[bytes | None, int]:
    """(EXIF with Orientation reset to 1, the orientation still to apply to the pixels).

    Called after decoding: Pillow applies a TIFF's orientation while loading and drops the
    tag, so what is left here is exactly what has not been applied yet.
    """
    try:
        exif = im.getexif()
    except Exception as exc:  # a broken EXIF block must not make a readable image unreadable
        log.warning("%s: ignoring unreadable EXIF (%s)", path, exc)
        return None, 1
    orientation = exif.get(_ORIENTATION, 1)
    return _portable_exif(path, exif, sub_ifds=True), orientation if orientation in _UPRIGHT else 1


def _portable_exif(path: Path, src: PILImage.Exif, *, sub_ifds: bool) -> bytes | None:
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


def _dpi(im: PILImage.Image) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if not dpi or len(dpi) < 2 or min(float(v) for v in dpi[:2]) <= 0:
        return None
    return float(dpi[0]), float(dpi[1])


def _is_lossless(fmt: str, data: bytes) -> bool:
    if fmt == "JPEG":
        return False
    return fmt != "WEBP" or _webp_chunk(data) == b"VP8L"


def _webp_chunk(data: bytes) -> bytes | None:
    """The first image-data chunk (VP8 lossy, VP8L lossless) of a still WebP."""
    offset = 12
    while offset + 8 <= len(data):
        fourcc = data[offset:offset + 4]
        size = int.from_bytes(data[offset + 4:offset + 8], "little")
        if fourcc in (b"VP8 ", b"VP8L"):
            return fourcc
        offset += 8 + size + (size & 1)
    return None


def _to_float_rgb(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels.astype(np.float32)
    rgb /= np.float32(65535 if pixels.dtype == np.uint16 else 255)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb)


# ---------------------------------------------------------------------------- writing


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    rgb: np.ndarray | None = None,
    *,
    format: str | None = None,
    jpeg_quality: int = 95,
) -> Path:
    """Write `rgb` (default ``image.rgb``) with `image`'s alpha, bit depth and metadata.

    `format` defaults to ``image.format``; the path's suffix is not consulted. Naming a format
    that cannot hold alpha (JPEG, BMP) drops the alpha; leaving it to the default raises
    `ImageError` instead. `jpeg_quality` also sets lossy WebP quality. The file is written
    atomically; OS errors (disk full, no permission) propagate as `OSError`.
    """
    path = Path(path)
    pixels = image.rgb if rgb is None else rgb
    _check_rgb(path, pixels)
    fmt = _output_format(path, format or image.format)
    depth = image.bit_depth if fmt in _DEEP_FORMATS else 8
    color = _quantize(pixels @ _LUMA if image.grayscale else pixels, depth)
    alpha = _output_alpha(path, image.alpha, color.shape[:2], fmt, explicit=format is not None)
    planes = color if alpha is None else np.dstack([color, _alpha_at_depth(alpha, depth)])
    data = _encode(path, fmt, planes, image, jpeg_quality)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _check_rgb(path: Path, pixels: np.ndarray) -> None:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or not np.issubdtype(pixels.dtype, np.floating):
        raise ValueError(f"rgb must be a float HxWx3 array, got {pixels.dtype} {pixels.shape}")
    if not np.isfinite(pixels).all():
        raise ImageError(path, "pixels contain NaN or infinite values")


def _output_format(path: Path, name: str) -> str:
    fmt = name.upper().lstrip(".")
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in _FORMATS:
        supported = ", ".join(_FORMATS)
        raise ImageError(path, f"unsupported output format {name!r} (supported: {supported})")
    return fmt


def _quantize(values: np.ndarray, depth: int) -> np.ndarray:
    """round(clip(x) * max) as uint8 or uint16."""
    scaled = np.clip(values, 0.0, 1.0).astype(np.float32) * np.float32(2**depth - 1)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint16 if depth == 16 else np.uint8)


def _output_alpha(
    path: Path, alpha: np.ndarray | None, size: tuple[int, int], fmt: str, *, explicit: bool
) -> np.ndarray | None:
    if alpha is None:
        return None
    if fmt not in _ALPHA_FORMATS:
        if not explicit:
            raise ImageError(
                path,
                f"image has an alpha channel, which {fmt} cannot store; "
                "write PNG, TIFF or WEBP, or name the format explicitly to drop the alpha",
            )
        log.warning("%s: dropping the alpha channel, which %s cannot store", path, fmt)
        return None
    if alpha.shape != size:  # the restorer changed the size (e.g. upscaling)
        shrink = alpha.shape[0] * alpha.shape[1] > size[0] * size[1]
        alpha = cv2.resize(alpha, (size[1], size[0]),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return alpha


def _alpha_at_depth(alpha: np.ndarray, depth: int) -> np.ndarray:
    if alpha.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"alpha must be uint8 or uint16, got {alpha.dtype}")
    if depth == 16:
        return alpha if alpha.dtype == np.uint16 else alpha.astype(np.uint16) * np.uint16(257)
    if alpha.dtype == np.uint8:
        return alpha
    return ((alpha.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(a / 257)


def _encode(path: Path, fmt: str, planes: np.ndarray, image: Image, quality: int) -> bytes:
    """Encode grey / grey+alpha / RGB / RGBA planes (HxW or HxWxC) to file bytes."""
    deep = planes.dtype == np.uint16
    if _channels(planes) <= 2 and (fmt == "WEBP" or (fmt == "TIFF" and deep and planes.ndim == 3)):
        planes = _grey_to_rgb(planes)  # WebP has no grey; see the module notes for TIFF
    icc = _matching_icc(path, image.icc_profile, grey=_channels(planes) <= 2)
    exif = None if fmt == "BMP" or (fmt == "TIFF" and deep) else _output_exif(path, image.exif, fmt)
    if deep:
        encode16 = _encode_png16 if fmt == "PNG" else _encode_tiff16
        return encode16(planes, icc, exif, image.dpi)
    return _encode_pil(fmt, planes, icc, exif, image, quality)


def _channels(planes: np.ndarray) -> int:
    return 1 if planes.ndim == 2 else planes.shape[2]


def _grey_to_rgb(planes: np.ndarray) -> np.ndarray:
    grey = planes if planes.ndim == 2 else planes[..., 0]
    rest = [] if planes.ndim == 2 else [planes[..., 1]]
    return np.dstack([grey, grey, grey, *rest])


def _matching_icc(path: Path, icc: bytes | None, *, grey: bool) -> bytes | None:
    """The profile, if its colour space (header bytes 16-20) fits the written channels."""
    if not icc:
        return None
    if icc[16:20] == (b"GRAY" if grey else b"RGB "):
        return icc
    log.warning("%s: dropping an ICC profile for %r data from a %s image",
                path, icc[16:20].decode("latin-1"), "grey" if grey else "colour")
    return None


def _output_exif(path: Path, exif: bytes | None, fmt: str) -> bytes | None:
    if not exif:
        return None
    src = PILImage.Exif()
    src.load(exif)
    return _portable_exif(path, src, sub_ifds=fmt != "TIFF")


def _encode_pil(
    fmt: str, planes: np.ndarray, icc: bytes | None, exif: bytes | None, image: Image, quality: int
) -> bytes:
    options: dict[str, object] = {
        "JPEG": {"quality": quality, "subsampling": 0},
        "WEBP": {"lossless": True, "exact": True} if image.lossless else {"quality": quality},
        "TIFF": {"compression": "tiff_adobe_deflate"},
    }.get(fmt, {})
    if icc and fmt != "BMP":
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    if image.dpi and fmt != "WEBP":
        options["dpi"] = image.dpi
    buffer = io.BytesIO()
    _in_source_mode(PILImage.fromarray(planes), image, fmt).save(buffer, format=fmt, **options)
    return buffer.getvalue()


_MODE_FORMATS = {"CMYK": ("JPEG", "TIFF"), "P": ("PNG", "BMP", "TIFF")}  # formats that hold each mode


def _in_source_mode(picture: PILImage.Image, image: Image, fmt: str) -> PILImage.Image:
    """RGB pixels back in the source's CMYK (Pillow's plain formula, the inverse of the decode) or
    palette (an adaptive palette with the source's colour count, undithered) where ``fmt`` holds it."""
    if picture.mode != "RGB" or fmt not in _MODE_FORMATS.get(image.colour_mode, ()):
        return picture
    if image.colour_mode == "CMYK":
        return picture.convert("CMYK")
    return picture.quantize(colors=image.palette_colours, method=PILImage.Quantize.MEDIANCUT, dither=PILImage.Dither.NONE)


def _encode_png16(
    planes: np.ndarray, icc: bytes | None, exif: bytes | None, dpi: tuple[float, float] | None
) -> bytes:
    """A 16-bit PNG (grey, grey+alpha, RGB or RGBA) with iCCP, pHYs and eXIf chunks."""
    height, width = planes.shape[:2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[_channels(planes)]
    rows = planes.astype(">u2").reshape(height, -1).view(np.uint8)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # filter type "Up": each byte minus the byte above (zero above row 0)
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
    if dpi:
        per_metre = (round(d / 0.0254) for d in dpi)
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif.removeprefix(b"Exif\0\0")))
    compressed = memoryview(zlib.compress(filtered, 6))
    chunks += [_png_chunk(b"IDAT", compressed[i:i + _IDAT_SIZE])
               for i in range(0, len(compressed), _IDAT_SIZE)]
    chunks.append(_png_chunk(b"IEND", b""))
    return _PNG_SIGNATURE + b"".join(chunks)


def _png_chunk(kind: bytes, payload: bytes | memoryview) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + bytes(payload) + struct.pack(">I", crc)


def _encode_tiff16(
    planes: np.ndarray, icc: bytes | None, exif: bytes | None, dpi: tuple[float, float] | None
) -> bytes:
    """A deflate-compressed 16-bit TIFF (grey, RGB or RGBA) with ICC and dpi; EXIF unused."""
    import tifffile  # installed with scikit-image; only this path needs it

    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        planes,
        photometric="minisblack" if planes.ndim == 2 else "rgb",
        extrasamples=("unassalpha",) if _channels(planes) == 4 else None,
        compression="zlib",
        iccprofile=icc,
        resolution=dpi,
        resolutionunit="INCH" if dpi else None,
        metadata=None,
        software=False,
    )
    return buffer.getvalue()


# ---------------------------------------------------------------------------- tensors


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 -> 1x3xHxW float32, contiguous."""
    import torch

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {rgb.shape}")
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw).unsqueeze(0)


def tensor_to_rgb(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW or 3xHxW -> HxWx3 float32 clamped to [0, 1].

    NaN stays NaN, so that write_image refuses it instead of writing black pixels.
    """
    import torch

    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a 1x3xHxW or 3xHxW tensor, got shape {tuple(t.shape)}")
    chw = t.detach().to("cpu", torch.float32).clamp(0.0, 1.0)
    return chw.permute(1, 2, 0).contiguous().numpy()


# ---------------------------------------------------------------------------- files


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path` (same suffix); on success fsync it and
    rename it onto `path`, on any exception remove it and leave `path` as it was."""
    path = Path(path)
    tmp = _new_temp(path)
    mode = tmp.stat().st_mode & 0o777
    try:
        yield tmp
        if tmp.stat().st_mode & 0o777 != mode:  # a writer that recreated the file (safetensors: 0600)
            os.chmod(tmp, mode)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically (newlines as given)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def remove_stale_temps(path: str | os.PathLike[str]) -> int:
    """Delete temp files that an interrupted write of `path` left beside it; returns how many."""
    path = Path(path)
    stale = list(path.parent.glob(f".{glob.escape(path.name[:200])}.*.tmp{glob.escape(path.suffix)}"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def _new_temp(path: Path) -> Path:
    """Create an empty, exclusive temp file (mode 0666 minus umask, like a normal file)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename or removal in ``folder`` durable (POSIX; some file systems refuse, which is harmless)."""
    if os.name == "posix":
        with suppress(OSError):
            _fsync(folder)


REPORT_FILES_DIR = "irestore-report-files"  # a restore report's previews: never inputs


def list_images(root: str | os.PathLike[str], exclude: Path | None = None) -> list[Path]:
    """Image files under `root` by extension, recursively, sorted by relative path parts.

    Hidden files and folders (leading dot; this includes unfinished atomic writes), a restore
    report's preview folder and everything under `exclude` (an output folder nested in the input)
    are skipped. A `root`
    that is itself an image file gives ``[root]``. Unreadable sub-folders are logged and skipped.
    """
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix.lower() in IMAGE_EXTENSIONS else []
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    skip = Path(exclude).resolve() if exclude is not None else None
    if skip == root.resolve():
        return []
    found: list[Path] = []
    for folder, dirnames, filenames in os.walk(root, onerror=_log_walk_error, followlinks=True):
        here = Path(folder)
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and d != REPORT_FILES_DIR and (here / d).resolve() != skip
                       and not _link_cycle(here, d)]
        found += [here / name for name in filenames
                  if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _link_cycle(here: Path, name: str) -> bool:
    """Whether the sub-folder ``name`` is a link to ``here`` or to a folder above it: walking into it
    would find the same link again, forever."""
    child = here / name
    if not child.is_symlink():
        return False
    target, current = child.resolve(), here.resolve()
    if target == current or target in current.parents:
        log.warning("skipping %s: a symbolic link to a folder that contains it (a cycle)", child)
        return True
    return False


def _log_walk_error(exc: OSError) -> None:
    log.warning("skipping %s: %s", exc.filename, exc.strerror or exc)
