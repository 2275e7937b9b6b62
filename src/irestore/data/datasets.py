"""Training and validation samples: real LQ/GT pairs, or clean photos with synthetic degradations.

Every random choice of item ``i`` (crop, flip/rotation, degradation, prompt wording, prompt
dropout) comes from ``np.random.default_rng([seed, epoch, i])``. ``set_epoch`` changes the
draws of a training set (or index with ``(epoch, i)``, which also reaches persistent DataLoader
workers); with ``augment=False`` (the default for splits other than ``train``)
the epoch is ignored and crops are centred, so a validation set is the same every time.

A dataset holds only paths and strings: it pickles into DataLoader worker processes and
opens each file only while reading it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from irestore.data.images import PixelCache, align_pair, augment, crop_window, read_pixels, reflect_pad, to_float
from irestore.data.layouts import DEFAULT_VAL_FRACTION, DatasetError, Pair, resolve, scan_split
from irestore.data.prompts import load_prompt_table, stored_prompt, task_prompt
from irestore.degrade.broad import Synthesis
from irestore.labels import NUM_LABELS, targets_from_labels, targets_from_params

__all__ = ["BLUR_MARGIN", "RestorationDataset", "build_dataset"]

BLUR_MARGIN = 32
"""Context (px) kept around a crop while degrading it, so blur kernels (up to 35 px) see real
pixels at the crop's border instead of a padded edge."""


class RestorationDataset(Dataset):
    """Items: ``lq``/``gt`` float32 3xHxW in [0, 1], ``prompt``, ``labels``/``severity``/
    ``severity_mask`` float32 over :data:`irestore.labels.LABELS`, and ``key``."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        name: str = "dataset",
        task: str = "paired",
        labels: Sequence[str] = (),
        crop: int | None = 256,
        degradations: str | None = None,
        seed: int = 0,
        augment: bool = False,
        prompt_dropout: float = 0.0,
        prompts: Mapping[str, str] | None = None,
        length: int | None = None,
        cache_mb: float = 0.0,
    ) -> None:
        if not pairs:
            raise DatasetError(f"{name}: no samples")
        if crop is not None and crop < 8:
            raise ValueError(f"crop must be at least 8 px (or None for whole images), got {crop}")
        if not 0.0 <= prompt_dropout <= 1.0:
            raise ValueError(f"prompt_dropout must be in [0, 1], got {prompt_dropout}")
        if length is not None and length < 1:
            raise ValueError(f"length must be positive, got {length}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.pairs = list(pairs)
        self.name, self.task, self.labels = name, task, tuple(labels)
        self.crop, self.seed, self.augment = crop, seed, augment
        self.prompt_dropout, self.length = prompt_dropout, length
        self.degradations = degradations
        self._synthesis = Synthesis(degradations) if degradations else None
        if self._synthesis is None and any(p.lq is None for p in self.pairs):
            raise ValueError(f"{name}: clean images need a degradation spec (e.g. 'noise:0-50')")
        self.stored_prompts = [stored_prompt(p, prompts or {}) for p in self.pairs]
        self.epoch = 0
        self.pixel_cache = PixelCache(int(cache_mb * 2**20)) if cache_mb else None

    def _read(self, path: Path) -> np.ndarray:
        return self.pixel_cache.read(path) if self.pixel_cache is not None else read_pixels(path)

    def set_epoch(self, epoch: int) -> None:
        """Draw other crops/degradations for a training epoch (no effect with augment off).

        This sets the epoch of this process's copy. DataLoader workers hold their own copies
        (persistent ones keep them across epochs): index with ``(epoch, index)`` pairs from the
        sampler to give each item its epoch wherever it is read.
        """
        self.epoch = _check_epoch(epoch)

    def __len__(self) -> int:
        return self.length if self.length is not None else len(self.pairs)

    def rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The generator of item ``index`` in ``epoch`` (default: the set epoch; 0 without augment)."""
        epoch = self.epoch if epoch is None else epoch
        return np.random.default_rng([self.seed, epoch if self.augment else 0, index])

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Item ``key``, or ``(epoch, index)``: that item as drawn in that epoch."""
        epoch, index = (None, key) if isinstance(key, (int, np.integer)) else key
        if epoch is not None:
            _check_epoch(epoch)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        pair_index = index % len(self.pairs)
        pair, rng = self.pairs[pair_index], self.rng(index, epoch)
        if pair.lq is None:
            lq, gt, params, description = self._synthetic(pair, rng)
            targets = targets_from_params(params)
        else:
            lq, gt = self._paired(pair, rng)
            description = task_prompt(self.task, rng)
            targets = _known_targets(self.labels)
        if self.augment:
            lq, gt = augment([lq, gt], rng)
        prompt = self.stored_prompts[pair_index]
        prompt = description if prompt is None else prompt
        if self.prompt_dropout and rng.random() < self.prompt_dropout:
            prompt = ""
        labels, severity, mask = (torch.from_numpy(t) for t in targets)
        return {"lq": _chw(lq), "gt": _chw(gt), "prompt": prompt, "labels": labels,
                "severity": severity, "severity_mask": mask, "key": pair.key}

    # -------------------------------------------------------------------- samples

    def _window_rng(self, rng: np.random.Generator) -> np.random.Generator | None:
        return rng if self.augment else None

    def _paired(self, pair: Pair, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        lq, gt = align_pair(self._read(pair.lq), self._read(pair.gt), pair.lq, pair.gt)
        if self.crop is None:
            return to_float(lq), to_float(gt)
        lq, gt = reflect_pad(lq, self.crop), reflect_pad(gt, self.crop)
        y, x = crop_window(*gt.shape[:2], self.crop, self._window_rng(rng))
        window = np.s_[y:y + self.crop, x:x + self.crop]
        return to_float(lq[window]), to_float(gt[window])

    def _synthetic(self, pair: Pair, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict, str]:
        """Crop with a margin, degrade, then cut the crop out of both (degrading a whole
        multi-megapixel photo for a 256 px crop would waste most of the work)."""
        pixels = self._read(pair.gt)
        if self.crop is None:
            clean = to_float(pixels)
            result = self._synthesis(clean, rng)
            return result.image, clean, result.params, result.description
        pixels = reflect_pad(pixels, self.crop)
        height, width = pixels.shape[:2]
        y, x = crop_window(height, width, self.crop, self._window_rng(rng))
        top, left = max(y - BLUR_MARGIN, 0), max(x - BLUR_MARGIN, 0)
        bottom, right = min(y + self.crop + BLUR_MARGIN, height), min(x + self.crop + BLUR_MARGIN, width)
        region = to_float(pixels[top:bottom, left:right])
        result = self._synthesis(region, rng)
        window = np.s_[y - top:y - top + self.crop, x - left:x - left + self.crop]
        return result.image[window], region[window], result.params, result.description


def _check_epoch(epoch: int) -> int:
    if epoch < 0:
        raise ValueError(f"epoch must be non-negative, got {epoch}")
    return int(epoch)


def _known_targets(labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of a paired set named by its degradation; all zero (unknown) for ``pairs:``."""
    if labels:
        return targets_from_labels(labels)
    zeros = np.zeros(NUM_LABELS, np.float32)
    return zeros, zeros.copy(), zeros.copy()


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def build_dataset(
    spec: str,
    *,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    crop: int | None = 256,
    degradations: str | None = None,
    seed: int = 0,
    augment: bool | None = None,
    prompt_dropout: float = 0.0,
    prompts: str | Path | None = None,
    length: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    cache_mb: float = 0.0,
) -> RestorationDataset:
    """A dataset from a registry name / ``NAME:ROOT`` / ``pairs:LQ,GT`` / ``folder:DIR`` spec.

    ``degradations`` (clean-only sets) defaults to the layout's spec (``noise:0-50`` for the
    denoising sets, a mix of all degradations for ``folder:``); ``augment`` defaults to
    ``split == "train"``; ``prompts`` is a CSV/JSONL file keyed by relative path;
    ``cache_mb`` keeps up to that many MB of decoded photos in memory (:class:`PixelCache`).
    """
    source = resolve(spec, root, val_fraction)
    layout = source.layout
    if degradations is not None and not layout.clean_only:
        raise ValueError(f"{layout.name} is a paired dataset; degradations apply only to clean-image sets "
                         "(folder:, bsd400-wed, cbsd68, div2k)")
    scan = scan_split(source, split)
    if not scan.pairs:
        from irestore.data.layouts import find_pairs  # for its message about what is missing

        find_pairs(spec, root, split, val_fraction=val_fraction)
    return RestorationDataset(
        sorted(scan.pairs, key=lambda p: p.key),
        name=layout.name,
        task=layout.task,
        labels=layout.labels,
        crop=crop,
        degradations=(degradations or layout.degradations) if layout.clean_only else None,
        seed=seed,
        augment=split == "train" if augment is None else augment,
        prompt_dropout=prompt_dropout,
        prompts=load_prompt_table(prompts) if prompts is not None else None,
        length=length,
        cache_mb=cache_mb,
    )
