"""Tests for irestore.io on real files made with Pillow, OpenCV and tifffile."""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from irestore.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    Image,
    ImageError,
    atomic_path,
    atomic_write_text,
    image_to_tensor,
    list_images,
    read_image,
    tensor_to_rgb,
    verify_image,
    write_image,
)

H, W = 12, 10
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF", ".webp": "WEBP", ".bmp": "BMP"}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MAKE, MODEL, EXPOSURE_TIME = 0x010F, 0x0110, 0x829A
ORIENTATION, EXIF_IFD = 0x0112, 0x8769


# ---------------------------------------------------------------------------- helpers


def _ints(shape: tuple[int, ...], depth: int, seed: int = 0) -> np.ndarray:
    dtype = np.uint16 if depth == 16 else np.uint8
    return np.random.default_rng(seed).integers(0, 2**depth, shape, dtype=dtype)


def _smooth(shape: tuple[int, ...]) -> np.ndarray:
    """A gradient that lossy codecs keep within a few levels."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 40 + 8 * y + 6 * x
    channels = [base + 30 * c for c in range(shape[2])] if len(shape) == 3 else [base]
    return np.clip(np.dstack(channels), 0, 255).astype(np.uint8).reshape(shape)


def _levels(rgb: np.ndarray, depth: int) -> np.ndarray:
    return np.rint(rgb * (2**depth - 1)).astype(np.int64)


def _as_rgb(planes: np.ndarray) -> np.ndarray:
    return np.repeat(planes[..., None], 3, axis=2) if planes.ndim == 2 else planes


def _cv2_save(path: Path, planes: np.ndarray) -> None:
    """Save RGB(A) or grey planes with OpenCV (BGR order on disk)."""
    bgr = planes if planes.ndim == 2 else planes[..., [2, 1, 0, 3][: planes.shape[2]]]
    ok, buf = cv2.imencode(path.suffix, bgr)
    assert ok
    buf.tofile(path)


def _exif(orientation: int | None = None, sub_ifd: bool = False) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[MAKE], exif[MODEL] = "Canon", "EOS R5"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if sub_ifd:
        exif.get_ifd(EXIF_IFD)[EXPOSURE_TIME] = 0.004
    return exif


def _png_with_chunk(path: Path, kind: bytes, payload: bytes) -> None:
    """Insert a chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    data = path.read_bytes()
    chunk = struct.pack(">I", len(payload)) + kind + payload
    chunk += struct.pack(">I", zlib.crc32(kind + payload))
    path.write_bytes(data[:33] + chunk + data[33:])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# ---------------------------------------------------------------------------- round trips


def _make_source(path: Path, layout: str, depth: int, lossy: bool):
    """Write a source file; return (expected RGB levels, expected alpha, grayscale)."""
    fmt = FORMATS[path.suffix]
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(layout, 3)
    shape = (H, W) if channels == 1 else (H, W, channels)
    planes = _smooth(shape) if lossy else _ints(shape, depth)
    extra = {"lossless": not lossy, "exact": True} if fmt == "WEBP" else {}
    if fmt == "JPEG":
        extra = {"quality": 95, "subsampling": 0}
    if depth == 16:
        _cv2_save(path, planes)
    elif layout in ("L", "LA", "RGB", "RGBA"):
        PILImage.fromarray(planes).save(path, fmt, **extra)
    elif layout in ("P", "PT"):
        palette = PILImage.fromarray(_ints((H, W, 3), 8)).quantize(16)
        if layout == "PT":
            palette.info["transparency"] = 0
        palette.save(path, fmt, **({"transparency": 0} if layout == "PT" else {}))
        decoded = np.asarray(palette.convert("RGBA"))
        alpha = decoded[..., 3] if layout == "PT" else None
        return decoded[..., :3].astype(np.int64), alpha, False
    elif layout == "1":
        bits = _ints((H, W), 8) > 127
        PILImage.fromarray(bits).save(path, fmt)
        return _as_rgb(bits.astype(np.int64) * 255), None, True
    elif layout == "CMYK":
        ink = _smooth((H, W, 4)) if lossy else _ints((H, W, 4), 8)
        cmyk = PILImage.frombytes("CMYK", (W, H), ink.tobytes())
        cmyk.save(path, fmt, **extra)
        reference = PILImage.open(path).convert("RGB")  # the plain formula io.py documents
        return np.asarray(reference).astype(np.int64), None, False
    color = {1: planes, 2: planes[..., 0], 3: planes, 4: planes[..., :3]}[channels]
    alpha = planes[..., -1] if channels in (2, 4) else None
    return _as_rgb(color).astype(np.int64), alpha, channels <= 2


ROUND_TRIPS = [
    *[(".png", layout, 8, False) for layout in ("L", "LA", "RGB", "RGBA", "P", "PT", "1")],
    *[(".png", layout, 16, False) for layout in ("L", "RGB", "RGBA")],
    (".jpg", "L", 8, True),
    (".jpg", "RGB", 8, True),
    (".jpg", "CMYK", 8, True),
    *[(".tif", layout, 8, False) for layout in ("L", "LA", "RGB", "RGBA", "P", "CMYK", "1")],
    *[(".tif", layout, 16, False) for layout in ("L", "RGB", "RGBA")],
    (".webp", "RGB", 8, False),
    (".webp", "RGBA", 8, False),
    (".webp", "RGB", 8, True),
    *[(".bmp", layout, 8, False) for layout in ("L", "RGB", "P", "1")],
]


ROUND_TRIP_IDS = [f"{s[1:]}-{m}-{d}{'-lossy' if y else ''}" for s, m, d, y in ROUND_TRIPS]


@pytest.mark.parametrize(("suffix", "layout", "depth", "lossy"), ROUND_TRIPS, ids=ROUND_TRIP_IDS)
def test_round_trip(tmp_path, suffix, layout, depth, lossy):
    src = tmp_path / f"src{suffix}"
    expected, alpha, grayscale = _make_source(src, layout, depth, lossy)

    image = read_image(src)
    assert (image.format, image.bit_depth, image.grayscale) == (FORMATS[suffix], depth, grayscale)
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (H, W, 3)
    assert image.rgb.flags.c_contiguous and 0 <= image.rgb.min() and image.rgb.max() <= 1
    assert image.lossless is not lossy
    if lossy:
        assert np.abs(_levels(image.rgb, 8) - expected).max() <= 12  # the source's own loss
    else:
        assert np.array_equal(_levels(image.rgb, depth), expected)
    if alpha is None:
        assert image.alpha is None
    else:
        assert image.alpha.dtype == alpha.dtype and np.array_equal(image.alpha, alpha)

    again = read_image(write_image(tmp_path / f"out{suffix}", image))
    assert (again.format, again.bit_depth, again.grayscale) == (image.format, depth, grayscale)
    if layout in ("P", "CMYK"):  # written back in the source's mode, where the format holds it
        assert PILImage.open(tmp_path / f"out{suffix}").mode == layout
    assert again.rgb.shape == image.rgb.shape
    diff = np.abs(_levels(again.rgb, depth) - _levels(image.rgb, depth))
    assert diff.max() <= (4 if lossy else 0)
    if alpha is not None:
        assert again.alpha.dtype == alpha.dtype and np.array_equal(again.alpha, alpha)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_encoder_is_read_identically_by_opencv(tmp_path, channels):
    planes = _ints((H, W, channels), 16, seed=channels)
    color = planes[..., 0] if channels <= 2 else planes[..., :3]
    alpha = planes[..., -1] if channels in (2, 4) else None
    image = Image(rgb=_as_rgb(color).astype(np.float32) / 65535, alpha=alpha, bit_depth=16,
                  format="PNG", grayscale=channels <= 2)
    path = write_image(tmp_path / "deep.png", image)

    decoded = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16
    if channels == 1:
        assert np.array_equal(decoded, color)
        assert np.array_equal(np.asarray(PILImage.open(path)), color)  # Pillow's I;16 agrees
    else:
        rgb = decoded[..., 2::-1]
        assert np.array_equal(rgb, _as_rgb(color))
        if alpha is not None:
            assert np.array_equal(decoded[..., 3], alpha)
    again = read_image(path)
    assert (again.bit_depth, again.grayscale) == (16, channels <= 2)
    assert np.array_equal(_levels(again.rgb, 16), _as_rgb(color))


def test_grey_alpha_16bit_tiff_is_stored_as_rgba(tmp_path):
    grey, alpha = _ints((H, W), 16, 1), _ints((H, W), 16, 2)
    image = Image(rgb=_as_rgb(grey).astype(np.float32) / 65535, alpha=alpha, bit_depth=16,
                  format="TIFF", grayscale=True)
    again = read_image(write_image(tmp_path / "ga.tif", image))
    assert (again.bit_depth, again.grayscale) == (16, False)  # documented exception
    assert np.array_equal(_levels(again.rgb, 16), _as_rgb(grey))
    assert np.array_equal(again.alpha, alpha)


def test_mpo_reads_as_jpeg(tmp_path):
    frame = PILImage.fromarray(_smooth((H, W, 3)))
    frame.save(tmp_path / "a.jpg", "MPO", save_all=True, append_images=[frame])
    assert read_image(tmp_path / "a.jpg").format == "JPEG"


def test_webp_write_keeps_lossless_or_lossy(tmp_path):
    rgb = _smooth((H, W, 3)).astype(np.float32) / 255
    for lossless, chunk in ((True, b"VP8L"), (False, b"VP8 ")):
        image = Image(rgb=rgb, format="WEBP", lossless=lossless)
        path = write_image(tmp_path / f"{lossless}.webp", image)
        assert path.read_bytes()[12:16] == chunk


# ---------------------------------------------------------------------------- writing rules


def test_rounding_and_clipping(tmp_path):
    levels = np.array([0, 1, 127, 128, 254, 255], np.float32)
    values = np.concatenate([levels - 0.49, levels + 0.49, [-300.0, 600.0]]) / 255
    rgb = np.repeat(values.astype(np.float32)[None, :, None], 3, axis=2)
    again = read_image(write_image(tmp_path / "r.png", Image(rgb=rgb)))
    got = _levels(again.rgb, 8)[0, :, 0]
    assert got.tolist() == [0, 1, 127, 128, 254, 255] * 2 + [0, 255]

    deep = np.array([[1000.4, 1000.6, 65534.6]], np.float64) / 65535
    image = Image(rgb=np.repeat(deep[..., None], 3, 2), bit_depth=16)
    again = read_image(write_image(tmp_path / "r16.png", image))
    assert _levels(again.rgb, 16)[0, :, 0].tolist() == [1000, 1001, 65535]


def test_grayscale_is_written_as_bt601_luma(tmp_path):
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[..., 0] = 1.0  # pure red
    path = write_image(tmp_path / "g.png", Image(rgb=rgb, grayscale=True))
    with PILImage.open(path) as im:
        assert im.mode == "L" and np.asarray(im).max() == round(0.299 * 255)


def test_alpha_to_jpeg_or_bmp_needs_explicit_format(tmp_path, caplog):
    alpha = _ints((H, W), 8)
    image = Image(rgb=_smooth((H, W, 3)).astype(np.float32) / 255, alpha=alpha, format="JPEG")
    for fmt in ("JPEG", "BMP"):
        image.format = fmt
        with pytest.raises(ImageError, match=f"alpha channel, which {fmt} cannot store"):
            write_image(tmp_path / "a.out", image)
    assert list(tmp_path.iterdir()) == []

    with caplog.at_level(logging.WARNING, logger="irestore.io"):
        path = write_image(tmp_path / "a.jpg", image, format="jpg")
    assert "dropping the alpha channel" in caplog.text
    with PILImage.open(path) as im:
        assert (im.format, im.mode) == ("JPEG", "RGB")


def test_16bit_alpha_is_rounded_to_8bit_for_webp(tmp_path):
    alpha = np.array([[0, 128, 129, 385, 65535]], np.uint16)
    image = Image(rgb=np.full((1, 5, 3), 0.5, np.float32), alpha=alpha, bit_depth=16)
    again = read_image(write_image(tmp_path / "a.webp", image, format="WEBP"))
    assert again.bit_depth == 8 and again.alpha.tolist() == [[0, 0, 1, 1, 255]]


def test_alpha_follows_a_resized_result(tmp_path):
    image = Image(rgb=np.zeros((4, 6, 3), np.float32), alpha=np.full((4, 6), 200, np.uint8))
    again = read_image(write_image(tmp_path / "up.png", image, np.zeros((8, 12, 3), np.float32)))
    assert again.alpha.shape == (8, 12) and (again.alpha == 200).all()


def test_bad_pixels_and_formats_are_rejected(tmp_path):
    image = Image(rgb=np.zeros((2, 2, 3), np.float32))
    target = tmp_path / "x.png"
    with pytest.raises(ImageError, match="NaN or infinite"):
        write_image(target, image, np.full((2, 2, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="unsupported output format 'gif'"):
        write_image(target, image, format="gif")
    with pytest.raises(ValueError, match="HxWx3"):
        write_image(target, image, np.zeros((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []
    assert write_image(tmp_path / "y", image, format=".TIF").read_bytes()[:4] == b"II*\x00"


# ---------------------------------------------------------------------------- orientation

UPRIGHT = np.kron(np.arange(6, dtype=np.uint8).reshape(2, 3), np.ones((8, 8), np.uint8))
UPRIGHT = np.stack([UPRIGHT * 40, 250 - UPRIGHT * 40, (UPRIGHT % 2) * 200], axis=2).astype(np.uint8)
# Orientation value -> Pillow transpose that produces the stored image from the upright one.
STORE = {
    1: None,
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_90,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_270,
}
ORIENTED = [".jpg", ".png", ".tif", ".webp", "16.png", "16.tif"]


def _stored(orientation: int) -> np.ndarray:
    image = PILImage.fromarray(UPRIGHT)
    op = STORE[orientation]
    return np.asarray(image if op is None else image.transpose(op))


def _write_oriented(path: Path, stored: np.ndarray, orientation: int) -> None:
    exif = _exif(orientation).tobytes()
    if path.name.endswith("16.png"):
        _cv2_save(path, stored.astype(np.uint16) * 257)
        _png_with_chunk(path, b"eXIf", exif.removeprefix(b"Exif\0\0"))
    elif path.name.endswith("16.tif"):
        tifffile.imwrite(path, stored.astype(np.uint16) * 257, photometric="rgb",
                         extratags=[(ORIENTATION, "H", 1, orientation, True)])
    else:
        fmt = FORMATS[path.suffix]
        extra = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})
        PILImage.fromarray(stored).save(path, fmt, exif=exif, **extra)
        with PILImage.open(path) as im:  # the test's construction agrees with Pillow's reading
            assert np.abs(np.asarray(ImageOps.exif_transpose(im), np.int64) - UPRIGHT).max() <= 3


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ORIENTED)
def test_exif_orientation_is_applied_and_reset(tmp_path, kind, orientation):
    path = tmp_path / f"photo{kind}"
    _write_oriented(path, _stored(orientation), orientation)
    depth = 16 if kind.startswith("16") else 8

    image = read_image(path)
    assert image.rgb.shape == UPRIGHT.shape
    assert np.abs(_levels(image.rgb, 8) - UPRIGHT).max() <= 3
    if image.exif is not None:
        exif = PILImage.Exif()
        exif.load(image.exif)
        assert exif.get(ORIENTATION, 1) == 1
        assert exif.get(MAKE) == (None if kind == "16.tif" else "Canon")

    out = write_image(tmp_path / f"out{kind}", image)
    with PILImage.open(out) as im:
        assert im.getexif().get(ORIENTATION, 1) == 1
    again = read_image(out)
    assert again.bit_depth == depth
    assert np.abs(_levels(again.rgb, 8) - UPRIGHT).max() <= 3


@pytest.mark.parametrize("orientation", range(2, 9))
def test_orientation_applies_to_alpha(tmp_path, orientation):
    stored = _stored(orientation)
    rgba = np.dstack([stored, stored[..., 0]])  # alpha shares the asymmetric pattern
    path = tmp_path / "a.png"
    PILImage.fromarray(rgba).save(path, exif=_exif(orientation).tobytes())
    image = read_image(path)
    assert np.array_equal(image.alpha, UPRIGHT[..., 0])
    assert np.array_equal(_levels(image.rgb, 8), UPRIGHT)


# ---------------------------------------------------------------------------- metadata

# (format, bit depth) -> kept: ICC, EXIF IFD0 (Make/Model), EXIF sub-IFD (ExposureTime), dpi.
KEPT = {
    ("PNG", 8): (True, True, True, True),
    ("PNG", 16): (True, True, True, True),
    ("JPEG", 8): (True, True, True, True),
    ("WEBP", 8): (True, True, True, False),
    ("TIFF", 8): (True, True, False, True),
    ("TIFF", 16): (True, False, False, True),
    ("BMP", 8): (False, False, False, True),
}


@pytest.mark.parametrize(("fmt", "depth"), list(KEPT))
def test_metadata_kept_per_format(tmp_path, fmt, depth):
    icc_kept, ifd0_kept, sub_kept, dpi_kept = KEPT[fmt, depth]
    image = Image(rgb=_smooth((H, W, 3)).astype(np.float32) / 255, bit_depth=depth, format=fmt,
                  icc_profile=SRGB, exif=_exif(1, sub_ifd=True).tobytes(), dpi=(300.0, 300.0))
    path = write_image(tmp_path / f"meta.{fmt.lower()}", image)

    with PILImage.open(path) as im:  # checked with Pillow, independently of read_image
        exif = im.getexif()
        assert (im.info.get("icc_profile") == SRGB) is icc_kept
        camera = ("Canon", "EOS R5") if ifd0_kept else (None, None)
        assert (exif.get(MAKE), exif.get(MODEL)) == camera
        assert (exif.get_ifd(EXIF_IFD).get(EXPOSURE_TIME) is not None) is sub_kept
        dpi = im.info.get("dpi")
        assert (dpi is not None and np.allclose(dpi, 300, atol=0.01)) is dpi_kept

    again = read_image(path)
    assert again.bit_depth == depth
    assert (again.icc_profile == SRGB) is icc_kept
    assert (again.exif is not None) is ifd0_kept


def test_tiff_exif_keeps_photo_tags_not_layout_tags(tmp_path):
    stored = _ints((H, W, 3), 8)
    PILImage.fromarray(stored).save(tmp_path / "a.tif", exif=_exif(3).tobytes(), icc_profile=SRGB)
    image = read_image(tmp_path / "a.tif")
    assert np.array_equal(_levels(image.rgb, 8), stored[::-1, ::-1])  # orientation 3 applied
    exif = PILImage.Exif()
    exif.load(image.exif)
    assert exif[MAKE] == "Canon" and exif.get(ORIENTATION, 1) == 1
    assert 273 not in exif and 256 not in exif  # StripOffsets, ImageWidth describe the old file
    assert image.icc_profile == SRGB
    with PILImage.open(write_image(tmp_path / "b.jpg", image, format="JPEG")) as im:
        assert im.getexif()[MODEL] == "EOS R5" and im.info["icc_profile"] == SRGB


def test_icc_profile_only_where_its_colour_space_fits(tmp_path, caplog):
    image = Image(rgb=np.full((2, 2, 3), 0.5, np.float32), grayscale=True, icc_profile=SRGB)
    with caplog.at_level(logging.WARNING, logger="irestore.io"):
        grey = write_image(tmp_path / "g.png", image)
    assert "dropping an ICC profile" in caplog.text
    with PILImage.open(grey) as im:
        assert im.mode == "L" and "icc_profile" not in im.info
    with PILImage.open(write_image(tmp_path / "g.webp", image, format="WEBP")) as im:
        assert im.mode == "RGB" and im.info["icc_profile"] == SRGB  # WebP stores grey as RGB


# ---------------------------------------------------------------------------- bad input


def _truncated(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:-10])
    return path


def _reason(path: Path, **kwargs) -> str:
    with pytest.raises(ImageError) as caught:
        read_image(path, **kwargs)
    assert caught.value.path == path and str(caught.value) == f"{path}: {caught.value.reason}"
    assert not verify_image(path)
    return caught.value.reason


def test_empty_text_directory_and_missing(tmp_path):
    (tmp_path / "empty.png").touch()
    (tmp_path / "notes.png").write_text("hello, not an image\n")
    (tmp_path / "x.png").mkdir()
    assert _reason(tmp_path / "empty.png") == "file is empty (0 bytes)"
    assert _reason(tmp_path / "notes.png") == "not an image file"
    assert _reason(tmp_path / "x.png") == "is a directory, not an image file"
    assert _reason(tmp_path / "missing.png") == "file not found"


@pytest.mark.filterwarnings("ignore:(Corrupt EXIF|Truncated File Read):UserWarning")
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".webp", ".bmp", "16.png", "16.tif"])
@pytest.mark.parametrize("keep", [0.5, 1.0], ids=["half", "tail"])
def test_truncated_files(tmp_path, suffix, keep):
    path = tmp_path / f"cut{suffix}"
    if suffix.startswith("16"):
        _cv2_save(path, _ints((64, 64, 3), 16))
    else:
        PILImage.fromarray(_ints((64, 64, 3), 8)).save(path, FORMATS[path.suffix])
    assert verify_image(path)
    fmt = FORMATS[path.suffix]
    assert _reason(_truncated(path, keep)).startswith(f"truncated or corrupt {fmt} data")


def test_unsupported_format(tmp_path):
    PILImage.fromarray(_ints((H, W, 3), 8)).save(tmp_path / "a.gif")
    assert _reason(tmp_path / "a.gif").startswith("unsupported image format GIF")


def test_max_pixels_is_checked_before_decoding(tmp_path):
    # A PNG header claiming 30000x30000 pixels and no pixel data at all.
    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    chunks = b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
                      for k, d in ((b"IHDR", ihdr), (b"IEND", b"")))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    reason = _reason(path)
    pixels = "900000000 pixels (30000x30000)"
    assert reason == f"image has {pixels}, more than --max-pixels {DEFAULT_MAX_PIXELS}"
    # With a higher limit it gets as far as decoding, past Pillow's own bomb check.
    assert _reason(path, max_pixels=10**10).startswith("truncated or corrupt PNG data")
    with pytest.raises(ImageError, match="more than --max-pixels 100"):
        read_image(_make_small_png(tmp_path), max_pixels=100)


def test_importing_irestore_io_keeps_pillows_own_bomb_guard():
    # in a fresh interpreter: this test process may have imported irestore.io long ago
    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import irestore.io; "
            "assert Image.MAX_IMAGE_PIXELS == before is not None, Image.MAX_IMAGE_PIXELS")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_an_image_past_pillows_limit_reads_when_max_pixels_allows_it(tmp_path, monkeypatch):
    # Pillow warns past MAX_IMAGE_PIXELS and refuses past twice that; a small stand-in limit
    # keeps the file small. The read still decodes every pixel, and leaves the limit alone.
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)
    pixels = _ints((20, 30, 3), 8)
    PILImage.fromarray(pixels).save(tmp_path / "big.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_image(tmp_path / "big.png")
    np.testing.assert_array_equal(image.rgb, pixels.astype(np.float32) / 255)
    assert verify_image(tmp_path / "big.png") and PILImage.MAX_IMAGE_PIXELS == 100
    with pytest.raises(PILImage.DecompressionBombError):
        PILImage.open(tmp_path / "big.png")


def test_a_file_larger_than_any_image_within_the_limit_is_refused_before_it_is_read(tmp_path):
    path = _make_small_png(tmp_path)
    padded = tmp_path / "padded.png"
    data = path.read_bytes()
    filler = b"x" * (2 << 20)  # a 2 MiB private ancillary chunk before IEND
    chunk = struct.pack(">I", len(filler)) + b"prIv" + filler + struct.pack(">I", zlib.crc32(b"prIv" + filler))
    padded.write_bytes(data[:-12] + chunk + data[-12:])
    assert read_image(padded).rgb.shape[:2] == (H, W)  # a valid PNG under the default limit
    size = padded.stat().st_size
    with pytest.raises(ImageError) as caught:
        read_image(padded, max_pixels=H * W)
    assert caught.value.reason == f"file is {size} bytes, more than an image of --max-pixels {H * W} can need"
    assert not verify_image(padded, max_pixels=H * W)


def test_verify_image_applies_an_output_pixel_limit(tmp_path):
    path = _make_small_png(tmp_path)
    assert verify_image(path) and verify_image(path, max_pixels=H * W)
    assert not verify_image(path, max_pixels=H * W - 1)


def _make_small_png(tmp_path: Path) -> Path:
    path = tmp_path / "small.png"
    PILImage.fromarray(_ints((H, W), 8)).save(path)
    return path


def test_unreadable_file_is_permission_denied(tmp_path):
    path = _make_small_png(tmp_path)
    path.chmod(0)
    if os.geteuid() != 0:
        assert _reason(path) == "permission denied"
        return
    # Root reads anything, so read from a child process that drops to user "nobody".
    # (It may be refused at a parent folder rather than the file: the same EACCES.)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one line through the pipe, then leave without cleanup
        try:
            try:
                os.setgid(65534)
                os.setuid(65534)
            except OSError:
                message = "cannot drop privileges"
            else:
                try:
                    read_image(path)
                    message = "read succeeded"
                except ImageError as exc:
                    message = exc.reason
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    message = os.read(read_end, 1000).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    if message == "cannot drop privileges":
        pytest.skip("running as root without the right to switch to an unprivileged user")
    assert message == "permission denied"


def test_image_error_pickles():
    error = pickle.loads(pickle.dumps(ImageError(Path("a b.png"), "not an image file")))
    assert (error.path, error.reason) == (Path("a b.png"), "not an image file")
    assert str(error) == "a b.png: not an image file"


# ---------------------------------------------------------------------------- atomic writes


def test_atomic_path_failure_leaves_nothing_and_keeps_target(tmp_path):
    target = tmp_path / "result.png"
    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="mid-way"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".")
        tmp.write_bytes(b"half of a new fi")
        raise RuntimeError("mid-way")
    assert target.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]

    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "new.png"):
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_write_image_failure_after_encoding_leaves_no_temp(tmp_path):
    # The target is a non-empty folder: the final rename fails after the temp file is written.
    target = tmp_path / "out.png"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(OSError):
        write_image(target, Image(rgb=np.zeros((2, 2, 3), np.float32)))
    assert _leftovers(tmp_path) == [] and (target / "keep.txt").read_text() == "mine"


def test_write_replaces_existing_target_and_respects_umask(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    write_image(target, Image(rgb=np.ones((2, 2, 3), np.float32)))
    assert verify_image(target) and _leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_text(tmp_path):
    path = tmp_path / "manifest.csv"
    atomic_write_text(path, "a,b\r\nré,写\n")
    assert path.read_bytes() == "a,b\r\nré,写\n".encode()
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]


# ---------------------------------------------------------------------------- paths


@pytest.mark.parametrize("name", ["fête d'été.png", "写真 16.png", "my photo.tif", "снимок.jpg"])
def test_non_ascii_and_space_paths(tmp_path, name):
    folder = tmp_path / "dossier é 写真"
    folder.mkdir()
    depth = 16 if "16" in name or name.endswith(".tif") else 8
    fmt = FORMATS[Path(name).suffix]
    rgb = _ints((H, W, 3), depth).astype(np.float32) / (2**depth - 1)
    path = write_image(folder / name, Image(rgb=rgb, bit_depth=depth, format=fmt))
    assert path.name == name and verify_image(path)
    again = read_image(path)
    assert again.source == path and again.bit_depth == (8 if fmt == "JPEG" else depth)
    if fmt != "JPEG":
        assert np.array_equal(_levels(again.rgb, depth), _levels(rgb, depth))
    assert list_images(tmp_path) == [path]


def test_list_images_order_exclusion_and_hidden(tmp_path):
    files = ["b.png", "A.JPG", "a/z.webp", "a/b/c.tif", "a.b/x.jpeg", "sub/img.BMP", "out/done.png",
             ".hidden.png", ".cache/x.png", "a/notes.txt", "a/.x.png.1a2b3c4d.tmp.png", "noext"]
    for name in reversed(files):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = list_images(tmp_path, exclude=tmp_path / "out")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "A.JPG", "a/b/c.tif", "a/z.webp", "a.b/x.jpeg", "b.png", "sub/img.BMP"]
    assert all(p.parent == tmp_path or tmp_path in p.parents for p in found)
    assert "out/done.png" in [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert list_images(tmp_path / "b.png") == [tmp_path / "b.png"]
    assert list_images(tmp_path, exclude=tmp_path) == []
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nowhere")
    assert IMAGE_EXTENSIONS == {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}


# ---------------------------------------------------------------------------- tensors


def test_tensor_conversions():
    import torch

    rgb = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    t = image_to_tensor(rgb)
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32 and t.is_contiguous()
    assert torch.equal(t[0, 1], torch.from_numpy(rgb[..., 1]))
    back = tensor_to_rgb(t)
    assert back.dtype == np.float32 and back.flags.c_contiguous and np.array_equal(back, rgb)
    wild = torch.tensor([-1.0, 0.25, 2.0, float("nan")]).reshape(1, 1, 4).expand(3, 1, 4)
    assert np.array_equal(tensor_to_rgb(wild)[0, :, 0], [0.0, 0.25, 1.0, np.nan], equal_nan=True)
    with pytest.raises(ValueError):
        image_to_tensor(rgb[..., 0])
    with pytest.raises(ValueError):
        tensor_to_rgb(torch.zeros(2, 3, 4, 4))


def test_remove_stale_temps_deletes_only_leftovers_of_that_output(tmp_path):
    from irestore.io import remove_stale_temps

    target = tmp_path / "photo [1].png"
    leftovers = [tmp_path / ".photo [1].png.0a1b2c3d.tmp.png", tmp_path / ".photo [1].png.ffffffff.tmp.png"]
    keep = [tmp_path / ".other.png.0a1b2c3d.tmp.png", tmp_path / "photo [1].png.txt", target]
    for p in leftovers + keep:
        p.write_bytes(b"x")
    assert remove_stale_temps(target) == 2
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in keep)


def test_atomic_path_gives_a_normal_file_mode_even_when_the_writer_recreates_the_file(tmp_path):
    target = tmp_path / "weights.bin"
    with atomic_path(target) as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)  # as safetensors' writer does
        os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
