"""Files: atomic writes (temporary file, fsync, rename) and the walk that finds images."""

from __future__ import annotations

import glob
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from irestore.io.image import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path` (same suffix); on success fsync it and
    rename it onto `path`, on any exception remove it and leave `path` as it was."""
    path = Path(path)
    tmp = _new_temp(path)
    mode = tmp.stat().st_mode & 0o777
    try:
        yield tmp
        if tmp.stat().st_mode & 0o777 != mode:  # a writer that recreated the file (safetensors: 0600)
            os.chmod(tmp, mode)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically (newlines as given)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def remove_stale_temps(path: str | os.PathLike[str]) -> int:
    """Delete temp files that an interrupted write of `path` left beside it; returns how many."""
    path = Path(path)
    stale = list(path.parent.glob(f".{glob.escape(path.name[:200])}.*.tmp{glob.escape(path.suffix)}"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def _new_temp(path: Path) -> Path:
    """Create an empty, exclusive temp file (mode 0666 minus umask, like a normal file)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename or removal in ``folder`` durable (POSIX; some file systems refuse, which is harmless)."""
    if os.name == "posix":
        with suppress(OSError):
            _fsync(folder)


REPORT_FILES_DIR = "irestore-report-files"  # a restore report's previews: never inputs


def list_images(root: str | os.PathLike[str], exclude: Path | None = None) -> list[Path]:
    """Image files under `root` by extension, recursively, sorted by relative path parts.

    Hidden files and folders (leading dot; this includes unfinished atomic writes), a restore
    report's preview folder and everything under `exclude` (an output folder nested in the input)
    are skipped. A `root`
    that is itself an image file gives ``[root]``. Unreadable sub-folders are logged and skipped.
    """
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix.lower() in IMAGE_EXTENSIONS else []
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    skip = Path(exclude).resolve() if exclude is not None else None
    if skip == root.resolve():
        return []
    found: list[Path] = []
    for folder, dirnames, filenames in os.walk(root, onerror=_log_walk_error, followlinks=True):
        here = Path(folder)
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and d != REPORT_FILES_DIR and (here / d).resolve() != skip
                       and not _link_cycle(here, d)]
        found += [here / name for name in filenames
                  if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _link_cycle(here: Path, name: str) -> bool:
    """Whether the sub-folder ``name`` is a link to ``here`` or to a folder above it: walking into it
    would find the same link again, forever."""
    child = here / name
    if not child.is_symlink():
        return False
    target, current = child.resolve(), here.resolve()
    if target == current or target in current.parents:
        log.warning("skipping %s: a symbolic link to a folder that contains it (a cycle)", child)
        return True
    return False


def _log_walk_error(exc: OSError) -> None:
    log.warning("skipping %s: %s", exc.filename, exc.strerror or exc)


class Manifest:
    """Append-only JSONL (the restore manifest, the benchmark's rows), one record per item and attempt
    (readers take the last per item); each append is fsynced, and a line a killed run tore is ended."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A run killed mid-append leaves a line without its newline: end it, so the next
        record starts on a line of its own (readers skip the torn one)."""
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb+") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
