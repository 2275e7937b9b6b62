"""Tiled noise prediction *inside* each sampler step.

The sampler keeps the whole image; at every step the noise prediction is evaluated on
overlapping tiles (batched) and blended with smooth weights, then the SDE step runs on
the full image. Each tile's prediction is used only away from its inner edges (weight 0
in the outer quarter of the overlap, a smooth ramp across the middle half), so a network
whose receptive radius is at most overlap/4 gives exactly the untiled result.

The shipped networks are not local: ERUNet's GRN and linear attention and M3UNet's attention
take statistics of the whole input, which a tile sees only in part, so tiled output is close
to, not equal to, untiled output. Measured on a 768x512 held-out photo with rain
(benchmarks/tiling_error.py, README "Tiling"): allinone-small 41-44 dB from its untiled output
whatever the overlap (the gap is the global statistics; larger tiles help, overlap does not);
derain 47.5 dB at 256 px tiles and 59.9 dB at 384 px with the default overlap of 32 px. Larger
overlaps pay only at 96 px on 256 px tiles (derain 60.9 dB) for about twice the tile area.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from irestore import observe
from irestore.models.conditioning import Conditioning

log = logging.getLogger(__name__)

MIN_TILE = 64


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, size) with tiles of `tile` px overlapping by at least `overlap`."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    count = math.ceil((size - tile) / stride) + 1
    # spread the tiles evenly so every overlap is at least `overlap`, the last one flush with the edge
    return sorted({round(i * (size - tile) / (count - 1)) for i in range(count)})


def edge_ramp(length: int, overlap: int, fade_start: bool, fade_end: bool) -> Tensor:
    """1-D blend weight of one tile: 1 inside, fading to 0 towards inner (non-image) edges."""
    w = torch.ones(length, dtype=torch.float32)
    margin = overlap // 4
    ramp_len = max(overlap - 2 * margin, 1)
    pos = torch.arange(length, dtype=torch.float32)
    ramp = ((pos - margin + 0.5) / ramp_len).clamp(0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    if fade_start:
        w = w * ramp
    if fade_end:
        w = w * ramp.flip(0)
    return w


@dataclass(frozen=True)
class TileBox:
    top: int
    left: int
    height: int
    width: int


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[TileBox]:
    tops = tile_starts(height, tile, overlap)
    lefts = tile_starts(width, tile, overlap)
    return [TileBox(y, x, min(tile, height), min(tile, width)) for y in tops for x in lefts]


def blend_weight(box: TileBox, height: int, width: int, overlap: int) -> Tensor:
    wy = edge_ramp(box.height, overlap, box.top > 0, box.top + box.height < height)
    wx = edge_ramp(box.width, overlap, box.left > 0, box.left + box.width < width)
    return wy[:, None] * wx[None, :]


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


class TiledDenoiser:
    """Wraps a noise predictor so it runs on tiles; same call signature as the network.

    tile=None evaluates the whole image at once. On out-of-memory the step is retried with
    half the tile size (down to MIN_TILE) and the smaller size is kept for later steps.
    """

    def __init__(
        self,
        network: Callable[[Tensor, Tensor, Tensor, Conditioning], Tensor],
        tile: int | None = None,
        overlap: int = 32,
        tile_batch: int = 4,
        on_retry: Callable[[int, int], None] | None = None,
    ):
        if tile is not None and tile <= overlap:
            raise ValueError(f"tile size {tile} must be larger than the overlap {overlap}")
        self.network = network
        self.tile = tile
        self.overlap = overlap
        self.tile_batch = max(1, tile_batch)
        self.on_retry = on_retry

    def __call__(self, x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        while True:
            try:
                return self._predict(x, mu, t, cond)
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not is_out_of_memory(error):
                    raise
                self._shrink(x, error)

    def _shrink(self, x: Tensor, error: BaseException) -> None:
        current = self.tile or max(x.shape[-2:])
        smaller = current // 2
        if smaller < max(MIN_TILE, self.overlap + 1):
            raise RuntimeError(f"out of memory even with {current}px tiles") from error
        log.warning("out of memory with %spx tiles; retrying this step with %spx tiles", current, smaller)
        if x.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.on_retry:
            self.on_retry(current, smaller)
        self.tile = smaller

    def _predict(self, x: Tensor, mu: Tensor, t: Tensor, cond: Conditioning) -> Tensor:
        height, width = x.shape[-2:]
        if self.tile is None or (height <= self.tile and width <= self.tile):
            return self.network(x, mu, t, cond)
        if x.shape[0] != 1:
            raise ValueError("tiled prediction handles one image at a time")
        boxes = tile_grid(height, width, self.tile, self.overlap)
        observe.tile_chosen(self.tile)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        total = torch.zeros((height, width), dtype=torch.float32, device=x.device)
        for start in range(0, len(boxes), self.tile_batch):
            observe.tiles_done(start, len(boxes))
            chunk = boxes[start : start + self.tile_batch]
            pred = self.network(
                _crop_batch(x, chunk), _crop_batch(mu, chunk), t[:1].expand(len(chunk)), cond.repeat(len(chunk))
            ).float()
            for box, tile_pred in zip(chunk, pred):
                weight = blend_weight(box, height, width, self.overlap).to(x.device)
                rows, cols = slice(box.top, box.top + box.height), slice(box.left, box.left + box.width)
                out[0, :, rows, cols] += tile_pred * weight
                total[rows, cols] += weight
        observe.tiles_done(len(boxes), len(boxes))
        return out / total


def _crop(img: Tensor, box: TileBox) -> Tensor:
    return img[..., box.top : box.top + box.height, box.left : box.left + box.width]


def _crop_batch(img: Tensor, boxes: list[TileBox]) -> Tensor:
    return torch.cat([_crop(img, box) for box in boxes])


MEMORY_FRACTION = 0.4  # share of the free memory that automatic tiling lets activations use
CPU_MAX_MEMORY = 4 * 2**30  # default ceiling of the process's memory on the CPU (README: 3 MP photo peaks)
MIN_BUDGET = 64 * 2**20  # below this, tiles are MIN_TILE-sized anyway
_max_memory: list[int | None] = [None]  # set by memory_limit (restore --max-memory)


@contextmanager
def memory_limit(limit: int | None) -> Iterator[None]:
    """Within the block, automatic tiling keeps the process (on the CPU: its resident memory; on a GPU:
    the memory torch holds there) under ``limit`` bytes; None restores the default (CPU_MAX_MEMORY on
    the CPU, only the free-memory share elsewhere)."""
    before = _max_memory[0]
    _max_memory[0] = limit
    try:
        yield
    finally:
        _max_memory[0] = before


def activation_budget(device: torch.device) -> int:
    """Bytes that a network's activations may take now: MEMORY_FRACTION of the free memory, and no
    more than the memory limit minus what the process already holds (its models, the images in hand)."""
    budget = int(available_memory(device) * MEMORY_FRACTION)
    limit = _max_memory[0] if _max_memory[0] is not None else (CPU_MAX_MEMORY if device.type == "cpu" else None)
    if limit is not None:
        budget = min(budget, limit - memory_in_use(device))
    return max(budget, MIN_BUDGET)


def memory_in_use(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    import psutil

    return int(psutil.Process().memory_info().rss)


def auto_tile_size(bytes_per_pixel: float, available_bytes: int, tile_batch: int, fraction: float = MEMORY_FRACTION) -> int | None:
    """Largest power-of-two-ish tile (multiple of 64) whose activations fit in `fraction` of the
    available memory; None means the whole image may be processed at once (caller decides)."""
    budget = available_bytes * fraction / max(tile_batch, 1)
    side = int(math.sqrt(budget / bytes_per_pixel)) // 64 * 64
    return max(side, MIN_TILE)


def choose_tile(tile: int | str | None, image: Tensor, bytes_per_pixel: float, device: torch.device,
                tile_batch: int = 1) -> int | None:
    """The tile size a network runs ``image`` with: ``"auto"`` means the whole image when its
    activations (``bytes_per_pixel``) fit in the activation budget, else the largest tile that does;
    None or 0 means never tile; a number is that tile size."""
    if tile in (None, 0):
        return None
    if tile != "auto":
        return int(tile)
    budget = activation_budget(device)
    if image.shape[-2] * image.shape[-1] * bytes_per_pixel <= budget:
        return None  # the whole image fits: tiles would only recompute their overlaps
    return auto_tile_size(bytes_per_pixel, budget, tile_batch, fraction=1.0)


def available_memory(device: torch.device) -> int:
    """Free memory on the device in bytes (CUDA: driver's free memory; else system RAM)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    import psutil

    return int(psutil.virtual_memory().available)


def apply_tiled(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    tile: int | None,
    overlap: int = 32,
    *,
    scale: int = 1,
    context: int = 0,
    align: int = 1,
) -> Tensor:
    """Run a feed-forward network ``fn`` (B x C x h x w -> B x C x sh x sw, s = ``scale``) over tiles.

    Each tile is cut with ``context`` extra pixels on its inner sides (clamped to the image, its
    start rounded down to a multiple of ``align`` for networks with a pixel-unshuffle grid), the
    network's output is cropped back to the tile and blended with the same smooth weights as the
    sampler's tiles, scaled by ``scale``. With ``context`` at least the network's receptive radius
    the result equals the whole-image one; ``tile=None`` runs the whole image.
    """
    height, width = x.shape[-2:]
    if tile is None or (height <= tile and width <= tile):
        return fn(x)
    if tile <= overlap:
        raise ValueError(f"tile size {tile} must be larger than the overlap {overlap}")
    out = torch.zeros((*x.shape[:-2], height * scale, width * scale), dtype=torch.float32, device=x.device)
    total = torch.zeros((height * scale, width * scale), dtype=torch.float32, device=x.device)
    boxes = tile_grid(height, width, tile, overlap)
    observe.tile_chosen(tile)
    for index, box in enumerate(boxes):
        observe.tiles_done(index, len(boxes))
        top = max(0, box.top - context) // align * align
        left = max(0, box.left - context) // align * align
        bottom, right = min(height, box.top + box.height + context), min(width, box.left + box.width + context)
        pred = fn(x[..., top:bottom, left:right]).float()
        r0, c0 = (box.top - top) * scale, (box.left - left) * scale
        piece = pred[..., r0 : r0 + box.height * scale, c0 : c0 + box.width * scale]
        scaled = TileBox(box.top * scale, box.left * scale, box.height * scale, box.width * scale)
        weight = blend_weight(scaled, height * scale, width * scale, overlap * scale).to(x.device)
        out[..., scaled.top : scaled.top + scaled.height, scaled.left : scaled.left + scaled.width] += piece * weight
        total[scaled.top : scaled.top + scaled.height, scaled.left : scaled.left + scaled.width] += weight
    observe.tiles_done(len(boxes), len(boxes))
    return out / total


def apply_with_fallback(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int | None, overlap: int = 32, **layout) -> Tensor:
    """:func:`apply_tiled` (``layout``: its scale, context, align), retried with half the tile
    size (down to MIN_TILE) on out-of-memory."""
    while True:
        try:
            return apply_tiled(fn, x, tile, min(overlap, (tile or overlap * 2) // 2), **layout)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            current = tile or max(x.shape[-2:])
            if current // 2 < MIN_TILE:
                raise RuntimeError(f"out of memory even with {current}px tiles") from error
            log.warning("out of memory with %spx tiles; retrying with %spx tiles (set --tile to choose)", current, current // 2)
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
            tile = current // 2
