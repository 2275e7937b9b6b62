"""What a batch run will do: the source images under INPUT (or listed by --files-from), each
one's output path (two inputs mapped to one output are refused), its reference image and its
prompt, by a fixed precedence. Nothing is read or written here beyond listing and prompt files."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from irestore.data.prompts import PromptFileError, load_prompt_file
from irestore.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    list_images,
)

FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}


class UsageError(ValueError):
    """Invalid command-line usage (exit code 2)."""


@dataclass(frozen=True)
class Job:
    source: Path
    relative: Path
    target: Path
    prompt: str
    prompt_source: str
    reference: Path | None = None


@dataclass(frozen=True)
class RestoreOptions:
    steps: int | None = None
    sampler: str | None = None
    tile: int | str | None = "auto"
    tile_overlap: int = 32
    tile_batch: int = 4
    seed: int = 0
    format: str | None = None
    jpeg_quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    overwrite: bool = False
    scale: int = 1  # the output is this many times the input's size
    strength: float | None = None  # the model's own control (waifu2x noise level), when it has one



def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _sources(input_path: Path, output: Path, files_from: Path | None) -> tuple[Path, list[Path]]:
    """The input root (resolved) and the source files under it: absolute paths as found, symbolic
    links not resolved, so that each output is named by the path the input was found under."""
    if files_from is not None:
        return _listed_sources(input_path if input_path.is_dir() else input_path.parent, files_from)
    if input_path.is_file():
        return input_path.parent, [input_path]
    if input_path.is_dir():
        if input_path.resolve() == output:
            raise UsageError(f"OUTPUT {output} is the same folder as INPUT: outputs would overwrite inputs")
        return input_path, list_images(input_path, exclude=output)
    raise UsageError(f"INPUT {input_path}: no such file or folder")


def _listed_sources(root: Path, files_from: Path) -> tuple[Path, list[Path]]:
    """--files-from entries, relative to the input root; an entry outside it is refused, since
    outputs mirror paths under the root."""
    if not files_from.is_file():
        raise UsageError(f"--files-from {files_from}: no such file")
    sources = []
    for number, line in enumerate(files_from.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        source = Path(os.path.normpath(root / entry))
        if not _within(source, root):
            raise UsageError(f"--files-from {files_from} line {number}: {entry} is outside INPUT {root}; "
                             "outputs mirror paths under INPUT, so list files inside it")
        sources.append(source)
    return root, sources


def _refuse_collisions(jobs: list[Job]) -> None:
    """Two inputs mapped to one output (``a.png`` and ``a.jpg`` with ``--format png``)."""
    seen: dict[Path, Job] = {}
    for job in jobs:
        key = Path(os.path.normcase(job.target))
        if key in seen:
            raise UsageError(f"{seen[key].source} and {job.source} would both be written to {job.target}; "
                             "restore them into different OUTPUT folders (or keep their formats)")
        seen[key] = job


def _target(output: Path, relative: Path, single_file: bool, fmt: str | None) -> Path:
    if single_file and output.suffix.lower() in IMAGE_EXTENSIONS:
        target = output
    else:
        target = output / relative
    return target.with_suffix(FORMAT_SUFFIX[fmt]) if fmt else target


def _reference_for(reference_dir: Path | None, relative: Path) -> Path | None:
    if reference_dir is None:
        return None
    exact = reference_dir / relative
    if exact.is_file():
        return exact
    matches = [p for p in exact.parent.glob(glob.escape(exact.stem) + ".*") if p.suffix.lower() in IMAGE_EXTENSIONS]
    return matches[0] if matches else None


def plan_jobs(
    input_path: Path,
    output: Path,
    *,
    files_from: Path | None = None,
    prompt: str | None = None,
    prompt_file: Path | None = None,
    reference_dir: Path | None = None,
    fmt: str | None = None,
    prompt_from_caption: bool = False,
) -> list[Job]:
    """Map inputs to outputs and prompts (precedence: PROMPT_PRECEDENCE). Symbolic links are
    followed; an output is named by the link's path under INPUT, not by its target's."""
    input_path, output = Path(os.path.abspath(input_path)), output.resolve()  # a linked INPUT keeps its name
    root, sources = _sources(input_path, output, files_from)
    try:
        table = load_prompt_file(prompt_file) if prompt_file else {}
    except PromptFileError as error:
        raise UsageError(str(error)) from error
    single = input_path.is_file() and files_from is None
    jobs = []
    for source in sources:
        relative = source.relative_to(root)
        target = _target(output, relative, single, fmt)
        if target.resolve() == source.resolve():
            raise UsageError(f"{source}: output would overwrite the input; choose another OUTPUT")
        text, origin = _prompt_for(source, relative, table, prompt, prompt_from_caption)
        jobs.append(Job(source, relative, target, text, origin, _reference_for(reference_dir, relative)))
    _refuse_collisions(jobs)
    return jobs


PROMPT_PRECEDENCE = "--prompt-file row > --prompt > sidecar IMAGE.txt > caption (--prompt-from-caption) > none"


def _prompt_for(source: Path, relative: Path, table: dict[str, str], prompt: str | None,
                prompt_from_caption: bool) -> tuple[str, str]:
    """(prompt, where it came from), by PROMPT_PRECEDENCE: what the user typed for this run beats a
    sidecar file lying beside the image."""
    sidecar = source.with_suffix(".txt")
    if relative.as_posix() in table:
        return table[relative.as_posix()], "prompt-file"
    if prompt is not None:
        return prompt, "--prompt"
    if sidecar.is_file():
        return sidecar.read_text(encoding="utf-8").strip(), "sidecar"
    if prompt_from_caption:
        return "", "caption"  # filled in by the captioner when the image is decoded
    return "", "none"


