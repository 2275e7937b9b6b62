"""The dataset layouts users bring, and how to find their image pairs.

A dataset is named by a registry name (``gopro``, ``sots-outdoor``, ...), optionally with its
root (``gopro:/data/GOPRO_Large``), or by a spec: ``pairs:LQ_DIR,GT_DIR`` (degraded and clean
folders matched by relative path, extensions may differ) or ``folder:DIR`` (clean photos that
get synthetic degradations). A registry root may be the dataset folder itself or its parent
(``/data`` holding ``GOPRO_Large/``); without one, ``$IRESTORE_DATA`` is tried.

Sets without a validation split of their own (``folder:``, ``pairs:``) are split into
``train``/``val`` by a hash of each photo's relative path, so the split is stable and never
puts one photo on both sides; ``all`` (and ``test``) gives every photo. ``all`` also works for
the registry layouts: the union of their splits, keys prefixed with the split.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from irestore.data.scan import (
    Pair,
    Scan,
    clean_scan,
    first_dir,
    holdout_fraction,
    images_in,
    match_folders,
    prefix_id,
    rain_id,
)

__all__ = [
    "DEFAULT_VAL_FRACTION",
    "LAYOUTS",
    "DatasetError",
    "Layout",
    "Pair",
    "SplitReport",
    "VerifyReport",
    "find_pairs",
    "get_layout",
    "list_layouts",
    "resolve",
    "verify_layout",
]

DEFAULT_VAL_FRACTION = 0.1
DATA_ENV = "IRESTORE_DATA"
FOLDER_DEGRADATIONS = "noise:0-50,blur,rain,haze,lowlight,jpeg,mix"
Finder = Callable[[Path, str], Scan]


class DatasetError(FileNotFoundError):
    """A dataset that cannot be found or read as its layout says; the message says what is missing."""


@dataclass(frozen=True)
class Layout:
    """A dataset layout: what task it trains, where its files are, and how many to expect."""

    name: str
    task: str  # deblur | derain | dehaze | denoise | lowlight | sr | synthetic | paired
    labels: tuple[str, ...]  # irestore.labels.LABELS of its degradation; () when synthesised
    clean_only: bool
    counts: tuple[tuple[str, int | None], ...]  # (split, expected pairs or images)
    description: str  # the folder layout users bring, one line
    finder: Finder = field(compare=False, repr=False)
    aliases: tuple[str, ...] = ()  # sub-folders of a parent root the dataset often unpacks to
    anchors: tuple[str, ...] = ()  # glob patterns of which one exists in the dataset folder
    degradations: str | None = None  # default synthetic degradation spec (clean-only sets)
    extra_splits: tuple[str, ...] = ()  # accepted splits without an expected count

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(split for split, _ in self.counts)

    @property
    def expected(self) -> dict[str, int | None]:
        return dict(self.counts)


# ---------------------------------------------------------------------------- finders


def _missing(path: Path, what: str = "") -> Scan:
    return Scan(missing=[f"{path}/{what}"])


def _split_dir(root: Path, name: str) -> Path | None:
    return first_dir(root, [name])


def _gopro(root: Path, split: str) -> Scan:
    split_dir = _split_dir(root, split)
    if split_dir is None:
        return _missing(root / split)
    flat_lq, flat_gt = first_dir(split_dir, ["input", "blur"]), first_dir(split_dir, ["target", "sharp"])
    if flat_lq and flat_gt:  # the flattened copy many deblurring repos use
        return match_folders(flat_lq, flat_gt, key_root=split_dir)
    scan = Scan()
    sequences = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sequence in sequences:
        scan.extend(match_folders(sequence / "blur", sequence / "sharp", key_root=split_dir))
    if not sequences:
        scan.missing.append(f"{split_dir}/GOPRxxxx_xx_xx/{{blur,sharp}}/")
    return scan


def _rain(root: Path, split: str) -> Scan:
    base = _split_dir(root, split)
    if base is None:
        if split != "test":
            return _missing(root / split)
        base = root  # the test set itself, without a test/ level
    lq_dir, gt_dir = first_dir(base, ["input", "rainy", "rain"]), first_dir(base, ["target", "norain", "gt"])
    match = partial(match_folders, key_root=base, lq_id=rain_id, gt_id=rain_id)
    if lq_dir and gt_dir:
        return match(lq_dir, gt_dir)
    flat_gt = sorted(p for p in base.glob("norain-*") if p.is_file())
    if lq_dir and flat_gt:  # PReNet: rainy/rain-N.png beside norain-N.png
        return match(lq_dir, base, gt_files=flat_gt)
    flat_lq = sorted(p for p in base.glob("rain-*") if p.is_file())
    if flat_lq or flat_gt:  # rain-N.png and norain-N.png in one folder
        return match(base, base, lq_files=flat_lq, gt_files=flat_gt)
    return _missing(base, "{input,target}/ (or rainy/rain-N.png + norain-N.png)")


def _hazy_pairs(folder: Path, lq_names: list[str], gt_names: list[str]) -> Scan:
    lq_dir, gt_dir = first_dir(folder, lq_names), first_dir(folder, gt_names)
    if lq_dir is None or gt_dir is None:
        absent = [names for names, found in ((lq_names, lq_dir), (gt_names, gt_dir)) if found is None]
        return Scan(missing=[f"{folder}/{names[0]}/ (or {', '.join(names[1:])})" for names in absent])
    scan = match_folders(lq_dir, gt_dir, key_root=folder)
    if not scan.pairs and not scan.missing:  # hazy 0001_0.8_0.2 -> clear 0001
        scan = match_folders(lq_dir, gt_dir, key_root=folder, lq_id=prefix_id, gt_id=prefix_id)
    return scan


def _sots(root: Path, split: str) -> Scan:
    return _hazy_pairs(root, ["hazy", "input"], ["gt", "clear", "target"])


def _reside6k(root: Path, split: str) -> Scan:
    split_dir = _split_dir(root, split)
    if split_dir is None:
        return _missing(root / split)
    return _hazy_pairs(split_dir, ["hazy", "input"], ["GT", "clear", "target"])


def _lol(root: Path, split: str) -> Scan:
    name = {"train": "our485", "test": "eval15"}[split]
    split_dir = _split_dir(root, name)
    if split_dir is None:
        return _missing(root / name)
    return match_folders(split_dir / "low", split_dir / "high", key_root=split_dir)


def _all_images(root: Path, split: str) -> Scan:
    return clean_scan(images_in(root), root)


def _cbsd68(root: Path, split: str) -> Scan:
    clean = first_dir(root, ["original_png", "original", "CBSD68", "gt", "clean"])
    if clean is not None:
        return clean_scan(images_in(clean), clean)
    return clean_scan(images_in(root, recursive=False), root)


_DIV2K_SPLIT = {"train": "train", "val": "valid"}


def _div2k(root: Path, split: str) -> Scan:
    hr = _split_dir(root, f"DIV2K_{_DIV2K_SPLIT[split]}_HR")
    if hr is None:
        return _missing(root / f"DIV2K_{_DIV2K_SPLIT[split]}_HR")
    return clean_scan(images_in(hr), hr)


def _div2k_lr(scale: int, root: Path, split: str) -> Scan:
    part = _DIV2K_SPLIT[split]
    lq_dir = root / f"DIV2K_{part}_LR_bicubic" / f"X{scale}"
    gt_dir = root / f"DIV2K_{part}_HR"
    strip_scale = partial(re.sub, rf"x{scale}$", "", flags=re.IGNORECASE)
    return match_folders(lq_dir, gt_dir, key_root=lq_dir, lq_id=strip_scale)


def _held_out(scan: Scan, split: str, val_fraction: float) -> Scan:
    """train/val by a hash of each photo's path; all/test keep everything."""
    if split in ("all", "test"):
        return scan
    keep_val = split == "val"
    fractions = [holdout_fraction(p.key) for p in scan.pairs]
    scan.pairs = [p for p, f in zip(scan.pairs, fractions, strict=True) if (f < val_fraction) == keep_val]
    if fractions and not scan.pairs:
        scan.note = (f"none of its {len(fractions)} images falls in the {split} split at val_fraction "
                     f"{val_fraction} ({_fraction_hint(fractions, keep_val)}, or use split 'all')")
    return scan


def _fraction_hint(fractions: list[float], keep_val: bool) -> str:
    """The val_fraction (2 decimals) that puts one image on the empty side of the split."""
    if keep_val:
        return f"val_fraction {math.floor(min(fractions) * 100 + 1) / 100:.2f} holds one out"
    return f"val_fraction {math.floor(max(fractions) * 100) / 100:.2f} keeps one for training"


def _folder(directory: Path, val_fraction: float, root: Path, split: str) -> Scan:
    if not directory.is_dir():
        return _missing(directory)
    return _held_out(clean_scan(images_in(directory), directory), split, val_fraction)


def _pairs(lq_dir: Path, gt_dir: Path, val_fraction: float, root: Path, split: str) -> Scan:
    return _held_out(match_folders(lq_dir, gt_dir, key_root=lq_dir), split, val_fraction)


# ---------------------------------------------------------------------------- registry


def _layout(name, task, labels, counts, description, finder, **kw) -> Layout:
    clean_only = kw.pop("clean_only", False)
    return Layout(name, task, tuple(labels), clean_only, tuple(counts.items()), description, finder, **kw)


_RAIN_ANCHORS = ("input", "rainy", "rain", "test", "norain-*", "rain-*")
_SOTS_ANCHORS = ("hazy", "input")

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in [
        _layout("gopro", "deblur", ["motion_blur"], {"train": 2103, "test": 1111},
                "GOPRO_Large/{train,test}/GOPRxxxx_xx_xx/{blur,blur_gamma,sharp}/*.png (blur -> sharp)",
                _gopro, aliases=("GOPRO_Large", "GoPro", "GOPRO", "gopro"), anchors=("train", "test")),
        _layout("rain100l", "derain", ["rain"], {"test": 100},
                "Rain100L/{input,target}/ or Rain100L/rainy/rain-N.png + Rain100L/norain-N.png",
                _rain, aliases=("Rain100L", "rain100L", "rain100l", "rain_data_test_Light", "test/Rain100L"),
                anchors=_RAIN_ANCHORS, extra_splits=("train",)),
        _layout("rain100h", "derain", ["rain"], {"test": 100},
                "Rain100H/{input,target}/ or Rain100H/rainy/rain-N.png + Rain100H/norain-N.png",
                _rain, aliases=("Rain100H", "rain100H", "rain100h", "rain_data_test_Heavy", "test/Rain100H"),
                anchors=_RAIN_ANCHORS, extra_splits=("train",)),
        _layout("sots-outdoor", "dehaze", ["haze"], {"test": 500},
                "SOTS/outdoor/hazy/0001_0.8_0.2.jpg -> SOTS/outdoor/{gt,clear}/0001.png",
                _sots, aliases=("outdoor", "SOTS/outdoor", "sots/outdoor", "SOTS-outdoor"), anchors=_SOTS_ANCHORS),
        _layout("sots-indoor", "dehaze", ["haze"], {"test": 500},
                "SOTS/indoor/hazy/1400_1.png -> SOTS/indoor/{gt,clear}/1400.png (10 hazy per clear image)",
                _sots, aliases=("indoor", "nyuhaze500", "SOTS/indoor", "SOTS/indoor/nyuhaze500", "indoor/nyuhaze500"),
                anchors=_SOTS_ANCHORS),
        _layout("reside6k", "dehaze", ["haze"], {"train": 6000, "test": 1000},
                "RESIDE-6K/{train,test}/{GT,hazy}/ (same file names)",
                _reside6k, aliases=("RESIDE-6K", "RESIDE6K", "reside-6k", "reside6k"), anchors=("train", "test")),
        _layout("bsd400-wed", "denoise", [], {"train": 5144},
                "BSD400 + WED (Waterloo Exploration) clean images anywhere under the root, e.g. {BSD400,WED}/",
                _all_images, clean_only=True, degradations="noise:0-50",
                aliases=("Denoise", "denoise", "Train/Denoise")),
        _layout("cbsd68", "denoise", [], {"test": 68},
                "CBSD68/original_png/*.png (or the 68 clean images directly in the folder); noise added at load",
                _cbsd68, clean_only=True, degradations="noise:0-50",
                aliases=("CBSD68", "cbsd68", "bsd68"), anchors=("original_png", "original", "*.png", "*.jpg")),
        _layout("div2k", "sr", [], {"train": 800, "val": 100},
                "DIV2K/DIV2K_train_HR/0001.png .. DIV2K_valid_HR/0900.png (clean HR; degradations synthesised)",
                _div2k, clean_only=True, degradations="lowres",
                aliases=("DIV2K", "div2k"), anchors=("DIV2K_train_HR", "DIV2K_valid_HR")),
        *[
            _layout(f"div2k-x{s}", "sr", ["lowres"], {"train": 800, "val": 100},
                    f"DIV2K/DIV2K_{{train,valid}}_LR_bicubic/X{s}/0001x{s}.png -> DIV2K_{{train,valid}}_HR/0001.png",
                    partial(_div2k_lr, s), aliases=("DIV2K", "div2k"),
                    anchors=("DIV2K_train_HR", "DIV2K_valid_HR"))
            for s in (2, 3, 4)
        ],
        _layout("lol", "lowlight", ["lowlight"], {"train": 485, "test": 15},
                "LOLdataset/{our485,eval15}/{low,high}/*.png (our485 = train, eval15 = test)",
                _lol, aliases=("LOLdataset", "LOL", "lol", "LOL-v1"), anchors=("our485", "eval15")),
    ]
}


def list_layouts() -> list[Layout]:
    """The registered layouts, in registry order."""
    return list(LAYOUTS.values())


def get_layout(name: str) -> Layout:
    layout = LAYOUTS.get(name.lower())
    if layout is None:
        known = ", ".join(LAYOUTS)
        raise ValueError(f"unknown dataset {name!r}; known: {known}, or pairs:LQ_DIR,GT_DIR or folder:DIR")
    return layout


# ---------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Source:
    """A resolved dataset: its layout and the folder its finder reads."""

    layout: Layout
    root: Path


def _spec_layout(kind: str, dirs: list[Path], val_fraction: float) -> Layout:
    counts = {"train": None, "val": None, "all": None}
    if kind == "folder":
        return Layout("folder", "synthetic", (), True, tuple(counts.items()),
                      f"clean photos under {dirs[0]}", partial(_folder, dirs[0], val_fraction),
                      degradations=FOLDER_DEGRADATIONS, extra_splits=("test",))
    return Layout("pairs", "paired", (), False, tuple(counts.items()),
                  f"degraded {dirs[0]} matched to clean {dirs[1]} by relative path",
                  partial(_pairs, dirs[0], dirs[1], val_fraction), extra_splits=("test",))


def resolve(name_or_spec: str, root: str | os.PathLike[str] | None = None,
            val_fraction: float = DEFAULT_VAL_FRACTION) -> Source:
    """Parse ``NAME``, ``NAME:ROOT``, ``pairs:LQ_DIR,GT_DIR`` or ``folder:DIR`` to a `Source`."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    kind, sep, rest = name_or_spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("folder", "pairs"):
        dirs = [Path(p.strip()).expanduser() for p in rest.split(",")] if rest.strip() else []
        if len(dirs) != (1 if kind == "folder" else 2):
            usage = "folder:DIR" if kind == "folder" else "pairs:LQ_DIR,GT_DIR"
            raise ValueError(f"bad dataset spec {name_or_spec!r}; expected {usage}")
        return Source(_spec_layout(kind, dirs, val_fraction), dirs[0])
    layout = get_layout(kind)
    if sep:
        root = rest
    if root is None:
        root = os.environ.get(DATA_ENV)
    if root is None or not str(root).strip():
        raise DatasetError(f"{layout.name}: no dataset folder given; pass {layout.name}:DIR (or --root DIR, "
                           f"or set ${DATA_ENV}). Expected layout: {layout.description}")
    return Source(layout, _locate(layout, Path(root).expanduser()))


def _has_anchor(folder: Path, anchors: tuple[str, ...]) -> bool:
    return folder.is_dir() and (not anchors or any(next(folder.glob(a), None) for a in anchors))


def _locate(layout: Layout, root: Path) -> Path:
    """The dataset folder: ``root`` itself, or one of the layout's usual folder names under it."""
    for candidate in (root, *(root / alias for alias in layout.aliases)):
        if _has_anchor(candidate, layout.anchors) and (candidate != root or not _alias_below(layout, root)):
            return candidate
    return root


def _alias_below(layout: Layout, root: Path) -> bool:
    """A parent folder that holds the dataset under a usual name (prefer that over the parent)."""
    return any(_has_anchor(root / alias, layout.anchors) for alias in layout.aliases)


# ---------------------------------------------------------------------------- find


def _check_split(layout: Layout, split: str) -> None:
    if split != "all" and split not in layout.splits and split not in layout.extra_splits:
        accepted = ", ".join((*layout.splits, *layout.extra_splits, "all"))
        raise ValueError(f"{layout.name} has no split {split!r}; choose one of {accepted}")


def scan_split(source: Source, split: str) -> Scan:
    """Walk one split (``all``: the union of the layout's splits, keys prefixed by split)."""
    layout = source.layout
    _check_split(layout, split)
    if split != "all" or "all" in layout.splits:
        return layout.finder(source.root, split)
    union = Scan()
    for name in layout.splits:
        part = layout.finder(source.root, name)
        part.pairs = [Pair(f"{name}/{p.key}", p.gt, p.lq) for p in part.pairs]
        union.extend(part)
    return union


def find_pairs(name_or_spec: str, root: str | os.PathLike[str] | None = None, split: str = "test",
               *, val_fraction: float = DEFAULT_VAL_FRACTION) -> list[Pair]:
    """The samples of one split, sorted by key; `DatasetError` when there are none."""
    source = resolve(name_or_spec, root, val_fraction)
    scan = scan_split(source, split)
    if not scan.pairs:
        raise DatasetError(_nothing_found(source, split, scan))
    return sorted(scan.pairs, key=lambda p: p.key)


def _nothing_found(source: Source, split: str, scan: Scan) -> str:
    layout = source.layout
    if not source.root.exists():
        problem = f"{source.root} does not exist"
    elif scan.note:
        problem = scan.note
    elif scan.missing:
        problem = "missing " + "; ".join(scan.missing[:5])
    elif scan.unmatched_lq or scan.unmatched_gt:
        problem = (f"{len(scan.unmatched_lq)} degraded and {len(scan.unmatched_gt)} clean images, "
                   "none with a counterpart")
    else:
        problem = "no image files"
    return f"{layout.name} ({split}) at {source.root}: {problem}. Expected layout: {layout.description}"


# ---------------------------------------------------------------------------- verify


@dataclass
class SplitReport:
    split: str
    found: int
    expected: int | None
    missing: list[str] = field(default_factory=list)
    unmatched_lq: list[str] = field(default_factory=list)
    unmatched_gt: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        counted = self.expected is None or self.found == self.expected
        problems = self.missing or self.unmatched_lq or self.unmatched_gt or self.unreadable
        return counted and self.found > 0 and not problems


@dataclass
class VerifyReport:
    name: str
    root: str
    description: str
    splits: list[SplitReport]

    @property
    def complete(self) -> bool:
        return all(s.complete for s in self.splits)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "root": self.root,
            "layout": self.description,
            "complete": self.complete,
            "splits": [{**vars(s), "complete": s.complete} for s in self.splits],
        }

    def summary(self, examples: int = 5) -> str:
        """Human-readable: found/expected per split, then what is missing or unmatched."""
        state = "complete" if self.complete else "INCOMPLETE"
        lines = [f"{self.name} at {self.root}: {state}", f"  layout: {self.description}"]
        for s in self.splits:
            expected = "?" if s.expected is None else str(s.expected)
            lines.append(f"  {s.split:<6} {s.found}/{expected} {'ok' if s.complete else 'problem'}")
            if s.expected is not None and s.found != s.expected:
                gap = s.expected - s.found
                lines.append(f"    {abs(gap)} {'missing' if gap > 0 else 'more than expected'}")
            for title, items in (("missing", s.missing), ("degraded file without ground truth", s.unmatched_lq),
                                 ("ground-truth file without degraded input", s.unmatched_gt),
                                 ("unreadable", s.unreadable)):
                lines += _listing(title, items, examples)
        return "\n".join(lines)


def _listing(title: str, items: list[str], examples: int) -> list[str]:
    if not items:
        return []
    lines = [f"    {title} ({len(items)}):"] + [f"      {item}" for item in items[:examples]]
    if len(items) > examples:
        lines.append(f"      ... and {len(items) - examples} more")
    return lines


def verify_layout(name_or_spec: str, root: str | os.PathLike[str] | None = None, *,
                  decode: bool = False) -> VerifyReport:
    """Check a dataset's folders, pairing and counts per split (``decode``: also decode every file)."""
    source = resolve(name_or_spec, root)
    layout = source.layout
    reports = []
    counted = [(split, expected) for split, expected in layout.counts if expected is not None]
    for split, expected in counted or [("all", None)]:  # folder:/pairs: have no expected counts
        scan = scan_split(source, split) if source.root.exists() else Scan(missing=[f"{source.root}/"])
        unreadable = _unreadable(scan.pairs) if decode else []
        reports.append(SplitReport(split, len(scan.pairs), expected, scan.missing,
                                   scan.unmatched_lq, scan.unmatched_gt, unreadable))
    return VerifyReport(layout.name, str(source.root), layout.description, reports)


def _unreadable(pairs: list[Pair]) -> list[str]:
    from irestore.io import verify_image

    files = sorted({str(p) for pair in pairs for p in (pair.gt, pair.lq) if p is not None})
    return [f for f in files if not verify_image(f)]
