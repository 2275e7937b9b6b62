"""``irestore manifest merge OUTPUT``: the shards' manifests folded into ``irestore-manifest.jsonl``.

Records are ordered by when they were written (``finished_at``; older records without it come
first, in file order) and deduplicated by output path: each output keeps its latest record, and
also its latest ``done`` record when a later attempt failed while that output is still on disk,
so a resume and the report read the merged file exactly as they read the shards' files. The
merged file is written atomically and made durable before any shard file is removed: a merge
cut off at any point loses no record (a rerun of the merge finishes it). Every manifest is locked
while it is merged (a restore holds its own while it runs), and a merge refuses a folder where a
restore is still running.
The shards' reports are replaced by one report of every image, from the merged manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from irestore.batch.report import (
    MANIFEST_NAME,
    build_report,
    read_manifest,
    read_records,
    report_paths,
    write_report,
)
from irestore.batch.shard import SHARD_MANIFEST_GLOB, SHARD_REPORT_GLOB, hold
from irestore.io import atomic_write_text, fsync_dir, remove_stale_temps

NO_FID = "computed over every image at once: rerun restore without --shard (it skips finished images) to add it"


@dataclass
class Merged:
    shards: list[Path] = field(default_factory=list)  # the shard manifests folded in (now removed)
    records: int = 0  # records read, the main manifest's included
    kept: int = 0  # records in the merged manifest
    report: Path | None = None  # the merged report's HTML page, when the shards wrote reports


def merge_folder(folder: Path) -> Merged:
    """Merge the shard manifests (and reports) of ``folder``; nothing to do without shard manifests."""
    shards = sorted(folder.glob(SHARD_MANIFEST_GLOB))
    result = Merged(shards)
    if not shards:
        return result
    main = folder / MANIFEST_NAME
    with contextlib.ExitStack() as locks:
        present = [main, *shards] if main.is_file() else shards  # a restore running unsharded holds main: it exists
        for path in present:
            locks.enter_context(hold(path, f"{path} is being written by a running restore: merge once every shard "
                                           "has finished"))
        records = [record for path in present for record in read_manifest(path)]
        merged = latest_records(records)
        remove_stale_temps(main)  # left by a merge that was killed mid-write
        atomic_write_text(main, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in merged))
        for path in shards:  # only now: the merged file is durable (atomic_write_text syncs it and the folder)
            path.unlink()
        fsync_dir(folder)
    result.records, result.kept = len(records), len(merged)
    result.report = _merge_reports(folder)
    return result


def latest_records(records: Iterable[dict]) -> list[dict]:
    """Per output path: its latest record, and its latest done record when a later attempt failed
    and the output is still there; in the order they were written."""
    ordered = sorted(enumerate(records), key=lambda item: (_finished(item[1]), item[0]))
    latest: dict[str, tuple[int, dict]] = {}
    done: dict[str, tuple[int, dict]] = {}
    for position, record in ordered:
        if not isinstance(record.get("output"), str):
            continue  # not a record of an image (no restore writes one)
        key = os.path.normcase(record["output"])
        latest[key] = (position, record)
        if record.get("status") == "done":
            done[key] = (position, record)
    kept = dict(latest.values())
    for key, (position, record) in done.items():
        if latest[key][1] is not record and Path(record["output"]).is_file():
            kept[position] = record
    return [record for _, record in sorted(kept.items(), key=lambda item: (_finished(item[1]), item[0]))]


def _finished(record: dict) -> float:
    value = record.get("finished_at")
    return float(value) if isinstance(value, int | float) else 0.0


def _merge_reports(folder: Path) -> Path | None:
    """One report of every image in place of the shards' reports (kept as they are when there are none)."""
    shard_pages = sorted(folder.glob(SHARD_REPORT_GLOB))
    if not shard_pages:
        return None
    status = _metric_status(shard_pages)
    paths = write_report(folder, build_report(read_records(folder), status))
    for page in shard_pages:
        for path in report_paths(folder, page.name.removesuffix(".json")).values():
            path.unlink(missing_ok=True)
    return paths["html"]


def _metric_status(pages: list[Path]) -> dict[str, str]:
    """Each metric computed ("") when some shard computed it, else the first shard's reason; FID aside."""
    status: dict[str, str] = {}
    for page in pages:
        try:
            metrics = json.loads(page.read_text(encoding="utf-8"))["summary"]["metrics"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a report cut off mid-write by a killed shard: its rows are in the manifests anyway
        for name, state in metrics.items():
            if state == "computed":
                status[name] = ""
            else:
                status.setdefault(name, str(state).removeprefix("unavailable: "))
    if "fid" in status:
        status["fid"] = NO_FID
    return status

