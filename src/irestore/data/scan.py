"""Finding image files and matching degraded (LQ) files to their ground truth (GT).

A *scan* of one split of a dataset returns the matched pairs and everything that prevented
a full match (missing folders, LQ files without GT, GT files without LQ), so that the same
walk serves both `find_pairs` and `verify_layout`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from irestore.io import IMAGE_EXTENSIONS

IdOf = Callable[[str], str]
"""Maps a file's relative path without extension (posix) to the id that pairs it."""


@dataclass(frozen=True)
class Pair:
    """One training/evaluation sample: ground truth and, for paired sets, its degraded input.

    ``key`` is a stable relative id (e.g. ``GOPR0384_11_00/blur/000001.png``); ``lq`` is
    ``None`` for clean-only sets, whose degradation is synthesised.
    """

    key: str
    gt: Path
    lq: Path | None = None


@dataclass
class Scan:
    """What one split of a dataset holds, and what keeps it from matching completely."""

    pairs: list[Pair] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # folders/files the layout needs
    unmatched_lq: list[str] = field(default_factory=list)
    unmatched_gt: list[str] = field(default_factory=list)
    note: str = ""  # why a split came out empty when the files are there

    def extend(self, other: Scan) -> None:
        self.pairs += other.pairs
        self.missing += other.missing
        self.unmatched_lq += other.unmatched_lq
        self.unmatched_gt += other.unmatched_gt


def is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def images_in(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Image files in ``folder`` (hidden ones skipped), sorted by relative path."""
    if not folder.is_dir():
        return []
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p.name))
    found: list[Path] = []
    for here, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(here) / name for name in filenames if is_image(name)]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def stem_path(path: Path, root: Path) -> str:
    """Relative posix path without the extension: ``a/b/0001.png`` -> ``a/b/0001``."""
    relative = path.relative_to(root).as_posix()
    return relative[: len(relative) - len(path.suffix)] if path.suffix else relative


def same_id(stem: str) -> str:
    return stem


def prefix_id(stem: str) -> str:
    """SOTS/RESIDE naming: ``0001_0.8_0.2`` (hazy) and ``0001`` (clear) share ``0001``."""
    head, _, name = stem.rpartition("/")
    return f"{head}/{name.split('_')[0]}" if head else name.split("_")[0]


_RAIN_NUMBER = re.compile(r"^(?:no)?rain(?:y)?[-_]?(\d+)(?:x\d+)?$", re.IGNORECASE)


def rain_id(stem: str) -> str:
    """Rain100 naming: ``rain-12``, ``norain-012``, ``norain-12x2`` (JORDER) all give ``12``."""
    name = stem.rpartition("/")[2]
    match = _RAIN_NUMBER.match(name)
    return str(int(match.group(1))) if match else name


def match_folders(
    lq_dir: Path,
    gt_dir: Path,
    *,
    key_root: Path,
    lq_files: Iterable[Path] | None = None,
    gt_files: Iterable[Path] | None = None,
    lq_id: IdOf = same_id,
    gt_id: IdOf = same_id,
) -> Scan:
    """Pair every LQ file with the GT file of the same id (extensions may differ).

    Several LQ files may share one GT (SOTS-indoor: ten hazy versions per clear image).
    Keys are LQ paths relative to ``key_root``.
    """
    scan = Scan()
    for folder in (lq_dir, gt_dir):
        if not folder.is_dir():
            scan.missing.append(f"{folder}/")
    if scan.missing:
        return scan
    lq_list = list(lq_files) if lq_files is not None else images_in(lq_dir)
    gt_list = list(gt_files) if gt_files is not None else images_in(gt_dir)
    gt_by_id: dict[str, Path] = {}
    for path in gt_list:
        gt_by_id.setdefault(gt_id(stem_path(path, gt_dir)), path)
    used: set[str] = set()
    for path in lq_list:
        ident = lq_id(stem_path(path, lq_dir))
        gt = gt_by_id.get(ident)
        if gt is None:
            scan.unmatched_lq.append(str(path))
            continue
        used.add(ident)
        scan.pairs.append(Pair(path.relative_to(key_root).as_posix(), gt, path))
    scan.unmatched_gt = [str(p) for ident, p in gt_by_id.items() if ident not in used]
    return scan


def clean_scan(files: Iterable[Path], key_root: Path) -> Scan:
    return Scan(pairs=[Pair(p.relative_to(key_root).as_posix(), p) for p in files])


def first_dir(parent: Path, names: Iterable[str]) -> Path | None:
    """The first of ``names`` that is a folder under ``parent`` (exact, then case-insensitive)."""
    names = list(names)
    for name in names:
        if (parent / name).is_dir():
            return parent / name
    if parent.is_dir():
        lowered = {n.lower() for n in names}
        for child in sorted(parent.iterdir()):
            if child.is_dir() and child.name.lower() in lowered:
                return child
    return None


def holdout_fraction(key: str) -> float:
    """A stable number in [0, 1) from a photo's relative path without extension.

    Splitting on it keeps every photo (in any of its formats) on one side of a train/val split,
    independent of the list order and of which other files exist.
    """
    stem = key.rsplit(".", 1)[0] if "." in key.rpartition("/")[2] else key
    digest = hashlib.sha1(stem.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
