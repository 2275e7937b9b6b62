"""Reading: a file becomes float32 RGB plus what is needed to write it back in kind."""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from irestore.io.image import (
    _ALPHA_MODES,
    _BYTES_PER_PIXEL,
    _FORMAT_ALIASES,
    _FORMATS,
    _GRAY_MODES,
    _HEADER_BYTES,
    _MAGIC,
    _ORIENTATION,
    _UPRIGHT,
    DEFAULT_MAX_PIXELS,
    OUTPUT_MAX_PIXELS,
    Image,
    ImageError,
    _Meta,
    portable_exif,
)

log = logging.getLogger(__name__)


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
    return portable_exif(path, exif, sub_ifds=True), orientation if orientation in _UPRIGHT else 1


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


