"""Sharded restore (``--shard K/N``): which images a shard owns, where it records them.

K is 0-based, 0 <= K < N, like torchrun's RANK and a Kubernetes JOB_COMPLETION_INDEX. An image
belongs to shard ``blake2b(relative path) mod N``: the path relative to INPUT, in posix form,
so the assignment is the same on every machine and run, and adding files never moves an
image that a shard already owns (Python's ``hash()`` is salted per process, hence a digest).
Each shard appends to a manifest of its own, so shards run at the same time into one OUTPUT
without sharing a file; ``irestore manifest merge`` joins them afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; shards still write files of their own
    fcntl = None

# Kubernetes gives an indexed Job's pods JOB_COMPLETION_INDEX but no count: the Job spec sets this one
COUNT_VAR = "IRESTORE_SHARD_COUNT"
SHARD_MANIFEST_GLOB = "irestore-manifest.shard-*-of-*.jsonl"  # within batch.report.MANIFEST_GLOB
SHARD_REPORT_GLOB = "irestore-report.shard-*-of-*.json"
SHARD_HELP = ("0-based K/N, 0 <= K < N: restore only the K-th of N disjoint shards (by a hash of each image's "
              "path relative to INPUT), recorded in a manifest of its own; auto: K/N from torchrun "
              f"(RANK, WORLD_SIZE), a SLURM array (SLURM_ARRAY_TASK_ID, _COUNT, _MIN) or a Kubernetes indexed "
              f"Job (JOB_COMPLETION_INDEX, {COUNT_VAR}).")


class ShardError(ValueError):
    """A --shard spec (or the environment behind --shard auto) that names no valid shard."""


@dataclass(frozen=True)
class Shard:
    index: int  # K, 0-based
    count: int  # N
    source: str = ""  # where K/N came from, for messages ("" when given on the command line)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"shard {self.index}/{self.count}: N must be at least 1")
        if not 0 <= self.index < self.count:
            raise ShardError(f"shard {self.index}/{self.count}: K is 0-based, 0 <= K < N "
                             f"(shards of {self.count} are 0/{self.count} to {self.count - 1}/{self.count})")

    @property
    def tag(self) -> str:
        """The file-name part that tells this shard's files apart: ``shard-K-of-N``."""
        return f"shard-{self.index}-of-{self.count}"

    @property
    def manifest_name(self) -> str:
        return f"irestore-manifest.{self.tag}.jsonl"

    @property
    def report_stem(self) -> str:
        return f"irestore-report.{self.tag}"

    def owns(self, relative: PurePath | str) -> bool:
        return shard_of(relative, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(relative: PurePath | str, count: int) -> int:
    """The shard (0 to ``count`` - 1) of an image, from its path relative to INPUT."""
    text = relative.as_posix() if isinstance(relative, PurePath) else str(relative)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(spec: str, env: Mapping[str, str] | None = None) -> Shard:
    """``K/N`` or ``auto`` (from ``env``, default the process environment) as a Shard."""
    if spec.strip().lower() == "auto":
        return shard_from_env(os.environ if env is None else env)
    index, slash, count = spec.partition("/")
    if not slash or not _is_int(index) or not _is_int(count):
        raise ShardError(f"--shard {spec}: give K/N with whole numbers, 0 <= K < N (e.g. 0/4), or auto")
    return Shard(int(index), int(count))


def shard_from_env(env: Mapping[str, str]) -> Shard:
    """K/N from the first launcher whose variables are set: torchrun, a SLURM array, a Kubernetes indexed Job."""
    if "RANK" in env or "WORLD_SIZE" in env:
        rank, world = _ints(env, "RANK", "WORLD_SIZE", "torchrun")
        return Shard(rank, world, "RANK/WORLD_SIZE")
    if "SLURM_ARRAY_TASK_ID" in env:
        task, count = _ints(env, "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "a SLURM array")
        first = _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        step = _int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
        if step < 1 or (task - first) % step:
            raise ShardError(f"--shard auto: SLURM array task {task} is not on the range from {first} by {step}; "
                             "give the array as a plain range (--array=0-N or 1-N)")
        return Shard((task - first) // step, count, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
    if "JOB_COMPLETION_INDEX" in env:
        index, count = _ints(env, "JOB_COMPLETION_INDEX", COUNT_VAR, "a Kubernetes indexed Job",
                             hint=f"set {COUNT_VAR} to the Job's completions")
        return Shard(index, count, f"JOB_COMPLETION_INDEX/{COUNT_VAR}")
    raise ShardError("--shard auto: none of RANK/WORLD_SIZE (torchrun), SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT "
                     f"(SLURM array) or JOB_COMPLETION_INDEX/{COUNT_VAR} (Kubernetes indexed Job) is set; "
                     "give --shard K/N")


def _ints(env: Mapping[str, str], first: str, second: str, launcher: str, hint: str = "") -> tuple[int, int]:
    missing = [name for name in (first, second) if name not in env]
    if missing:
        raise ShardError(f"--shard auto: {' and '.join(missing)} not set (for {launcher})" + (f"; {hint}" if hint else ""))
    return _int(env, first), _int(env, second)


def _int(env: Mapping[str, str], name: str) -> int:
    if not _is_int(env[name]):
        raise ShardError(f"--shard auto: {name}={env[name]!r} is not a whole number")
    return int(env[name])


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


@contextlib.contextmanager
def hold(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent) while a shard writes it, or while a
    merge folds it in: records appended to a file a merge has already read would be lost.
    Raises ShardError with ``busy`` when another process holds it."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise ShardError(busy) from None
        except OSError:  # a file system without locks (some network and FUSE mounts): go on unguarded
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
