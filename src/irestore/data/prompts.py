"""Prompts for training samples: prompt files keyed by path, sidecar ``.txt`` files, task phrases.

Precedence for one sample: a prompt file row (CSV ``path,prompt`` or JSONL) whose path is the
sample's key or a trailing part of its GT/LQ path, then a sidecar ``.txt`` beside the GT or the
LQ image, then (decided by the dataset) the synthetic degradation's description or a phrase for
the dataset's task. Rows are matched by path, never by list position.
"""

from __future__ import annotations

import csv
import json
import posixpath
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from irestore.data.scan import Pair

__all__ = ["TASK_PROMPTS", "PromptFileError", "load_prompt_file", "load_prompt_table", "stored_prompt", "task_prompt"]


class PromptFileError(ValueError):
    """A prompt file that is missing or has rows without 'path' and 'prompt'."""


def load_prompt_file(path: Path) -> dict[str, str]:
    """CSV (columns path,prompt) or JSONL ({"path": ..., "prompt": ...}) keyed by relative path."""
    if not path.is_file():
        raise PromptFileError(f"--prompt-file {path}: no such file")
    prompts: dict[str, str] = {}
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = list(csv.DictReader(text.splitlines()))
        for row in rows:
            prompts[Path(row["path"]).as_posix()] = str(row["prompt"])
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise PromptFileError(f"--prompt-file {path}: each row needs 'path' and 'prompt' ({error})") from error
    return prompts

TASK_PROMPTS: dict[str, tuple[str, ...]] = {
    "deblur": (
        "remove the motion blur",
        "sharpen this motion-blurred photo",
        "deblur this picture",
        "this shot is blurred by camera shake",
        "remove the camera-shake blur from this image",
    ),
    "derain": (
        "remove the rain",
        "derain this rainy photo",
        "take the rain streaks out of this picture",
        "this image has rain streaks",
    ),
    "dehaze": (
        "remove the haze",
        "dehaze this hazy photo",
        "clear the fog from this picture",
        "the scene is hazy",
    ),
    "denoise": (
        "remove the noise",
        "denoise this noisy photo",
        "this picture is grainy",
        "clean up the sensor noise",
    ),
    "lowlight": (
        "brighten this dark photo",
        "enhance this low-light image",
        "this photo is underexposed",
        "fix the low light in this picture",
    ),
    "sr": (
        "upscale this low-resolution image",
        "super-resolve this picture",
        "increase the resolution of this photo",
        "this image is low resolution",
    ),
    "paired": (
        "restore this image",
        "improve the quality of this photo",
        "repair this degraded picture",
    ),
}


def load_prompt_table(path: str | Path) -> dict[str, str]:
    """CSV (``path,prompt``) or JSONL rows keyed by normalised relative posix path."""
    table = load_prompt_file(Path(path))
    return {_normal(key): text for key, text in table.items()}


def _normal(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")).lstrip("/")


def _candidates(pair: Pair) -> list[str]:
    """The key, then every trailing part of the GT and LQ paths, longest first."""
    found = [_normal(pair.key)]
    for path in (pair.gt, pair.lq):
        if path is not None:
            parts = path.parts[1:] if path.is_absolute() else path.parts
            found += ["/".join(parts[i:]) for i in range(len(parts))]
    return found


def stored_prompt(pair: Pair, table: Mapping[str, str]) -> str | None:
    """The prompt a user stored for this sample (prompt file, then sidecar), or None."""
    if table:
        for candidate in _candidates(pair):
            if candidate in table:
                return table[candidate]
    for image in (pair.gt, pair.lq):
        sidecar = image.with_suffix(".txt") if image is not None else None
        if sidecar is not None and sidecar.is_file():
            return sidecar.read_text(encoding="utf-8").strip()
    return None


def task_prompt(task: str, rng: np.random.Generator) -> str:
    """A varied phrase for a paired dataset's degradation ('' for an unknown task)."""
    phrases = TASK_PROMPTS.get(task)
    return phrases[int(rng.integers(len(phrases)))] if phrases else ""
