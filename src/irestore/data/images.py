"""Fast pixel loading and the geometric steps of a training sample (align, crop, pad, flip/rotate).

Training reads many large photos to use a small crop of each, so pixels are decoded with OpenCV
(EXIF orientation applied, grey expanded to RGB, alpha dropped, 8 or 16 bits kept) and cropped
*before* the conversion to float. Files OpenCV cannot decode go through :func:`irestore.io.read_image`,
whose errors name the file and the problem.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from irestore.io import ImageError, read_image

__all__ = ["PixelCache", "align_pair", "augment", "crop_window", "read_pixels", "reflect_pad", "to_float"]

# larger LQ/GT size differences than this (px, per side) are an error, not a trim
_MAX_TRIM = 16


def read_pixels(path: Path) -> np.ndarray:
    """HxWx3 RGB, uint8 or uint16 as stored (float32 in [0, 1] when decoded by irestore.io)."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if pixels is None or pixels.dtype not in (np.uint8, np.uint16):
        return read_image(path).rgb
    return pixels[..., ::-1]  # BGR -> RGB (a view; copied by the crop's conversion)


class PixelCache:
    """Decoded photos kept in memory, least recently used out first, up to ``max_bytes``.

    A training epoch takes a small crop from each of many multi-megapixel photos, and the
    decoding costs far more than the crop and its degradation; so each process (each data
    loader worker holds its own dataset copy) decodes a photo once and keeps its pixels.
    Cached arrays are read-only: every caller crops and converts, never writes in place.
    A photo larger than the whole budget is decoded each time and not kept.
    """

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"the pixel cache size must be non-negative, got {max_bytes} bytes")
        self.max_bytes, self.bytes = max_bytes, 0
        self.hits = self.misses = 0
        self._items: OrderedDict[Path, np.ndarray] = OrderedDict()

    def read(self, path: Path) -> np.ndarray:
        pixels = self._items.get(path)
        if pixels is not None:
            self._items.move_to_end(path)
            self.hits += 1
            return pixels
        self.misses += 1
        pixels = read_pixels(path)
        if pixels.nbytes <= self.max_bytes:
            pixels.flags.writeable = False
            self._items[path] = pixels
            self.bytes += pixels.nbytes
            while self.bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= dropped.nbytes
        return pixels

    def __len__(self) -> int:
        return len(self._items)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16/float pixels -> contiguous float32 in [0, 1]."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / np.float32(65535)
    return np.ascontiguousarray(pixels, dtype=np.float32)


def align_pair(lq: np.ndarray, gt: np.ndarray, lq_path: Path, gt_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Bring LQ to GT's size: bicubic upsampling for an integer-factor LR image (SR sets),
    trimming to the common size for a few-pixel mismatch (some SOTS pairs)."""
    (lh, lw), (gh, gw) = lq.shape[:2], gt.shape[:2]
    if (lh, lw) == (gh, gw):
        return lq, gt
    if gh % lh == 0 and gw % lw == 0 and gh // lh == gw // lw:
        return cv2.resize(lq, (gw, gh), interpolation=cv2.INTER_CUBIC), gt
    if abs(lh - gh) <= _MAX_TRIM and abs(lw - gw) <= _MAX_TRIM:
        h, w = min(lh, gh), min(lw, gw)
        return lq[:h, :w], gt[:h, :w]
    raise ImageError(lq_path, f"size {lw}x{lh} does not fit its ground truth {gt_path} ({gw}x{gh})")


def crop_window(height: int, width: int, crop: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """Top-left corner of a crop: uniform when ``rng`` is given, else centred."""
    spare_y, spare_x = max(height - crop, 0), max(width - crop, 0)
    if rng is None:
        return spare_y // 2, spare_x // 2
    return int(rng.integers(spare_y + 1)), int(rng.integers(spare_x + 1))


def reflect_pad(image: np.ndarray, size: int) -> np.ndarray:
    """Pad an image smaller than ``size`` (either side) by reflection up to ``size``."""
    pad_y, pad_x = max(size - image.shape[0], 0), max(size - image.shape[1], 0)
    if not pad_y and not pad_x:
        return image
    mode = "reflect" if min(image.shape[:2]) > 1 else "edge"
    padded = image
    while padded.shape[0] < size or padded.shape[1] < size:  # reflection adds at most size-1 per pass
        py = min(max(size - padded.shape[0], 0), padded.shape[0] - 1) if mode == "reflect" else pad_y
        px = min(max(size - padded.shape[1], 0), padded.shape[1] - 1) if mode == "reflect" else pad_x
        padded = np.pad(padded, ((0, py), (0, px), (0, 0)), mode=mode)
    return padded


def augment(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One of the 8 flips/90-degree rotations, the same for every image."""
    choice = int(rng.integers(8))
    out = []
    for image in images:
        image = np.rot90(image, choice % 4)
        out.append(np.ascontiguousarray(image[:, ::-1] if choice >= 4 else image))
    return out
