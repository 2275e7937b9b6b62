"""Whether an existing output can be kept on a rerun: it must be complete and made with the
settings of this run.

Each finished image's manifest record carries the settings that made it (model and weights hash,
sampler, steps, seed, scale, precision, format, prompt and its source, ...) and the size and
modification time of the file written. A rerun keeps an output only when those settings equal
this run's; an output made otherwise is redone (``--overwrite`` redoes every image). A record
whose size and mtime still match the file is trusted without decoding it, so resuming a huge
folder does not read every output; any other existing output is decoded to check it is whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from irestore.batch.report import manifest_records
from irestore.io import verify_image

OVERWRITE = "--overwrite"
SAME = "a complete output made with these settings exists (--overwrite redoes it)"
UNRECORDED = "a complete output exists (no manifest record of its settings; --overwrite redoes it)"


@dataclass(frozen=True)
class Decision:
    keep: bool
    reason: str  # empty for an image that simply has no output yet

    @property
    def redone(self) -> bool:
        """An existing output restored again because it is stale or broken (not because of --overwrite)."""
        return not self.keep and self.reason not in ("", OVERWRITE)


def file_stamp(path: Path) -> dict:
    """The size and modification time a later run compares with the file on disk."""
    stat = path.stat()
    return {"output_bytes": stat.st_size, "output_mtime_ns": stat.st_mtime_ns}


def finished_outputs(folder: Path) -> dict[str, dict]:
    """The last ``done`` record per output path in the manifests of ``folder``."""
    return {os.path.normcase(record["output"]): record for record in manifest_records(folder)
            if record.get("status") == "done" and "output" in record}


def decide(target: Path, settings: dict, previous: dict | None) -> Decision:
    """Keep ``target`` or restore its image again, and why."""
    if not target.is_file():
        return Decision(False, "")
    recorded = (previous or {}).get("settings")
    if recorded is not None and recorded != settings:
        return Decision(False, "its output was made with other settings (" + _differences(recorded, settings) + "); redone")
    if recorded is not None and _stamp_matches(target, previous):
        return Decision(True, SAME)
    if not verify_image(target):
        return Decision(False, "its output is incomplete or unreadable; redone")
    return Decision(True, SAME if recorded is not None else UNRECORDED)


def _stamp_matches(target: Path, record: dict) -> bool:
    try:
        return file_stamp(target) == {key: record.get(key) for key in ("output_bytes", "output_mtime_ns")}
    except OSError:
        return False


def _differences(before: dict, now: dict, limit: int = 3) -> str:
    changed = [key for key in sorted(before.keys() | now.keys()) if before.get(key) != now.get(key)]
    shown = [f"{key}: {_short(before.get(key))} -> {_short(now.get(key))}" for key in changed[:limit]]
    return ", ".join(shown) + (f", and {len(changed) - limit} more" if len(changed) > limit else "")


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
