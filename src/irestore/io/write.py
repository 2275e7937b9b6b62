"""Writing: restored pixels become a file in the source's kind, through a temporary file."""

from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from irestore.io.files import atomic_path
from irestore.io.image import (
    _ALPHA_FORMATS,
    _DEEP_FORMATS,
    _FORMAT_ALIASES,
    _FORMATS,
    _IDAT_SIZE,
    _LUMA,
    _PNG_SIGNATURE,
    Image,
    ImageError,
    portable_exif,
)

log = logging.getLogger(__name__)


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


def unchanged_source(image: Image, rgb: np.ndarray, format: str | None = None) -> bool:
    """Whether writing ``rgb`` in ``format`` (default: the source's) would only re-encode ``image``'s
    own file: the same pixels in the same format. Then the file should be copied instead: a JPEG
    that no step changed would otherwise lose quality to a second compression."""
    if image.source is None or not Path(image.source).is_file() or rgb.shape != image.rgb.shape:
        return False
    same_format = format is None or _output_format(Path(image.source), format) == image.format
    return same_format and bool(np.array_equal(rgb, image.rgb))


def copy_source(path: str | os.PathLike[str], image: Image) -> Path:
    """Copy ``image``'s source file to ``path`` byte for byte (metadata and all), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        shutil.copyfile(image.source, tmp)
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
    return portable_exif(path, src, sub_ifds=fmt != "TIFF")


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


