"""Run peer methods over a suite: one row per (task, image, method), then aggregates. Pure data.

`run_benchmark(config)` returns a :class:`BenchmarkResult`; nothing is printed. Every finished
row is appended to ``OUT/rows.jsonl`` as it completes, and every restored image is written under
``OUT/images/<task>/<method>/`` (with the degraded input in ``_input`` and the ground truth in
``_gt``), so ``resume=True`` reuses what an interrupted run finished and the report can show crops.
A method that fails on an image gives a ``failed`` row with the error; a method that does not
apply (wrong degradation family, no true kernel for real blur) gives a ``skipped`` row with the
reason. Neither stops the run.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from typing_extensions import Self

from irestore.benchmark.published import PublishedRow, published_for
from irestore.benchmark.suites import Prepared, Sample, Suite, build_suite, find_samples, prepare
from irestore.evaluate.metrics import FIDMetric, LPIPSMetric, MetricUnavailable, Protocol, check_required, get_protocol
from irestore.io import Image, Manifest, atomic_write_text, write_image
from irestore.restorers import Card, Condition, MethodSkipped, RestorationMethod, create_restorer, method_info

__all__ = [
    "Aggregate",
    "BenchmarkConfig",
    "BenchmarkError",
    "BenchmarkResult",
    "MethodEntry",
    "Row",
    "TaskEntry",
    "default_methods",
    "method_slug",
    "resolve_methods",
    "run_benchmark",
]

BASELINE = "identity"  # the degraded input itself: every default run includes it
DEFAULT_OUT = Path("irestore-benchmark")
ROWS_FILE = "rows.jsonl"
RUN_FILE = "run.json"
INPUT_DIR, GT_DIR = "_input", "_gt"


class BenchmarkError(ValueError):
    """The benchmark cannot start as asked (bad suite, missing data or required metrics, resume mismatch)."""


@dataclass(frozen=True)
class BenchmarkConfig:
    suite: str
    methods: tuple[str, ...] = ()  # (): identity and the pool members for the suite (default_methods)
    out: Path = DEFAULT_OUT
    degradations: str | None = None
    data_root: Path | None = None
    roots: dict[str, Path] = field(default_factory=dict)  # dataset name -> its folder
    protocol: str | None = None  # None: the suite's own
    require: tuple[str, ...] = ()  # metrics whose absence is an error: lpips, fid
    resume: bool = False
    limit: int | None = None
    max_side: int | None = None
    device: str = "cpu"
    seed: int = 0

    def identity(self, protocol: Protocol) -> dict:
        """What results must share to be reused by --resume."""
        return {"suite": self.suite, "degradations": self.degradations, "protocol": protocol.fingerprint,
                "max_side": self.max_side, "seed": self.seed}


@dataclass
class Row:
    task: str
    key: str
    method: str
    status: str  # ok | failed | skipped
    psnr: float | None = None
    ssim: float | None = None
    lpips: float | None = None
    seconds: float | None = None
    megapixels: float | None = None
    s_per_mp: float | None = None
    peak_mb: float | None = None
    error: str = ""
    output: str = ""  # restored image, relative to the output folder
    details: dict | None = None  # what a composite method did (a plan's steps and scores)

    @classmethod
    def from_dict(cls, data: dict) -> Row:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Aggregate:
    task: str
    method: str
    images: int = 0
    failed: int = 0
    skipped: int = 0
    psnr: float | None = None
    ssim: float | None = None
    lpips: float | None = None
    fid: float | None = None
    s_per_mp: float | None = None
    peak_mb: float | None = None
    note: str = ""  # why there are no numbers (first skip reason or error)


@dataclass
class TaskEntry:
    name: str
    label: str
    family: str | None
    dataset: str
    images: int


@dataclass
class MethodEntry:
    name: str
    description: str = ""
    families: list[str] = field(default_factory=list)
    parameters: str = ""
    settings: dict = field(default_factory=dict)
    load_error: str = ""

    @property
    def steps(self) -> int | None:
        return self.settings.get("steps") if self.name.startswith("irestore:") else None


@dataclass
class BenchmarkResult:
    config: dict
    protocol: Protocol
    suite: str
    tasks: list[TaskEntry]
    methods: list[MethodEntry]
    rows: list[Row]
    aggregates: list[Aggregate]
    averages: dict[str, dict]  # method -> {psnr, ssim, tasks}
    metric_status: dict[str, str]  # lpips/fid -> "" when computed, else why not
    published: list[PublishedRow]
    notes: list[str]
    seconds: float = 0.0  # wall time of this run
    reused: int = 0  # rows taken over from an earlier run (--resume)

    def to_dict(self) -> dict:
        return {
            "suite": self.suite,
            "config": self.config,
            "protocol": self.protocol.to_dict(),
            "notes": self.notes,
            "metric_status": {k: v or "computed" for k, v in self.metric_status.items()},
            "tasks": [asdict(t) for t in self.tasks],
            "methods": [asdict(m) for m in self.methods],
            "aggregates": [asdict(a) for a in self.aggregates],
            "averages": self.averages,
            "published": [asdict(p) for p in self.published],
            "rows": [asdict(r) for r in self.rows],
            "plans": plan_comparison(self),
            "seconds": self.seconds,
            "reused": self.reused,
        }

    def aggregate(self, task: str, method: str) -> Aggregate | None:
        return next((a for a in self.aggregates if a.task == task and a.method == method), None)


def method_slug(name: str) -> str:
    """A folder name for a method spec (``irestore:ckpt/x@10`` -> ``irestore_ckpt_x_10``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "method"


# --------------------------------------------------------------------------- running

RowCallback = Callable[[Row, int, int], None]


def default_methods(suite: Suite) -> tuple[str, ...]:
    """``identity`` and the planner's pool members (in pool order) that run on one of the suite's tasks."""
    from irestore.plan.pool import DEFAULT_POOL

    cards = {name: method_info(name).card for name in DEFAULT_POOL}
    members = [name for name in DEFAULT_POOL if any(applies(cards[name], t.family) for t in suite.tasks)]
    return (BASELINE, *members)


def resolve_methods(config: BenchmarkConfig) -> BenchmarkConfig:
    """The config with its methods filled in (the suite's default methods when none are given)."""
    if config.methods:
        return config
    suite, _ = _suite_and_protocol(config)
    return replace(config, methods=default_methods(suite))


def applies(card: Card, family: str | None) -> bool:
    """Whether a method runs on a task: it handles the task's family; on inputs of unknown
    degradation (pairs without --degradations), whenever it is blind (it estimates what it needs)."""
    return card.blind or card.any_input if family is None else card.handles_family(family)


def why_not(card: Card, family: str | None) -> str:
    if family is None:
        needs = card.parameters.split(" (")[0]
        return f"{card.name} is not blind (it needs the {needs}), and these pairs state no degradation"
    return card.why_not(family)


def run_benchmark(config: BenchmarkConfig, on_row: RowCallback | None = None) -> BenchmarkResult:
    """Run every method on every sample of the suite; see the module docstring."""
    started = time.perf_counter()
    config = resolve_methods(config)
    suite, protocol = _suite_and_protocol(config)
    metric_status = _metric_status(config.require)
    samples = _samples(suite, config)
    _check_methods(config.methods)
    methods, entries = _load_methods(config)
    store = _open_store(config, protocol)
    runner = _Runner(config, protocol, methods, store, metric_status, on_row)
    total = sum(len(s) for s in samples.values()) * len(config.methods)
    for task_samples in samples.values():
        for sample in task_samples:
            runner.run_sample(sample, total)
    rows = runner.rows
    aggregates = _aggregate(suite, config.methods, rows)
    _add_fid(aggregates, rows, config, runner.fid)
    notes = _notes(suite, config, protocol)
    return BenchmarkResult(
        config=_config_dict(config),
        protocol=protocol,
        suite=suite.name,
        tasks=[TaskEntry(t.name, t.label, t.family, t.dataset, len(samples[t.name])) for t in suite.tasks],
        methods=entries,
        rows=rows,
        aggregates=aggregates,
        averages=_averages(suite, config.methods, aggregates),
        metric_status=metric_status,
        published=published_for(suite.name) if suite.published else [],
        notes=notes,
        seconds=time.perf_counter() - started,
        reused=runner.reused,
    )


def _suite_and_protocol(config: BenchmarkConfig) -> tuple[Suite, Protocol]:
    try:
        suite = build_suite(config.suite, config.degradations)
        return suite, get_protocol(config.protocol or suite.protocol)
    except (KeyError, ValueError) as error:
        raise BenchmarkError(str(error).strip("'\"")) from error


def _metric_status(require: tuple[str, ...]) -> dict[str, str]:
    """lpips/fid -> '' when their weights are present, else why not; BenchmarkError if a required one is missing."""
    status = check_required(("lpips", "fid"))
    unknown = sorted(set(require) - set(status))
    if unknown:
        raise BenchmarkError(f"--require takes lpips and/or fid, not {', '.join(unknown)}")
    missing = [f"{name}: {status[name]}" for name in require if status[name]]
    if missing:
        raise BenchmarkError("required metric(s) unavailable:\n  " + "\n  ".join(missing))
    return status


def _samples(suite: Suite, config: BenchmarkConfig) -> dict[str, list[Sample]]:
    try:
        return find_samples(suite, config.data_root, config.roots, config.limit)
    except ValueError as error:
        raise BenchmarkError(str(error)) from error


def _check_methods(names: tuple[str, ...]) -> None:
    if len(set(names)) != len(names):
        raise BenchmarkError(f"a method is listed twice: {','.join(names)}")
    for name in names:
        try:
            method_info(name)
        except KeyError as error:
            raise BenchmarkError(str(error).strip("'\"")) from error


def _open_store(config: BenchmarkConfig, protocol: Protocol) -> dict[tuple[str, str, str], Row]:
    """Rows reusable under --resume (ok and skipped; failures are retried); starts the row file."""
    config.out.mkdir(parents=True, exist_ok=True)
    run_file, rows_file = config.out / RUN_FILE, config.out / ROWS_FILE
    identity = config.identity(protocol)
    reusable: dict[tuple[str, str, str], Row] = {}
    if config.resume and run_file.is_file():
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        if previous != identity:
            changed = ", ".join(k for k in identity if previous.get(k) != identity[k])
            raise BenchmarkError(f"{config.out} holds results of another setup ({changed} differ); "
                                 "run without --resume to start over, or choose another --out")
        for row in _read_rows(rows_file):
            if row.status in ("ok", "skipped"):
                reusable[(row.task, row.key, row.method)] = row
    elif rows_file.exists():
        rows_file.unlink()  # a fresh run: earlier rows are not mixed in
    atomic_write_text(run_file, json.dumps(identity, indent=2) + "\n")
    return reusable


def _read_rows(path: Path) -> list[Row]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(Row.from_dict(json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line torn by a killed run
    return rows


def _load_methods(config: BenchmarkConfig) -> tuple[dict[str, RestorationMethod | Exception], list[MethodEntry]]:
    methods: dict[str, RestorationMethod | Exception] = {}
    entries = []
    for name in config.methods:
        methods[name], entry = _load_method(name, config)
        entries.append(entry)
    return methods, entries


def _load_method(name: str, config: BenchmarkConfig) -> tuple[RestorationMethod | Exception, MethodEntry]:
    info = method_info(name)
    entry = MethodEntry(name, info.summary, list(info.families), info.parameters)
    try:
        method = create_restorer(name, device=config.device, seed=config.seed)
        entry.description, entry.settings = method.description, method.settings()
    except Exception as error:  # any loading failure is reported per row, not fatal
        entry.load_error = f"{type(error).__name__}: {error}"
        return error, entry
    _check_steps(name, method)
    return method, entry


def _check_steps(name: str, method: RestorationMethod) -> None:
    """More sampler steps than the model's SDE has is a usage error, before any row runs."""
    from irestore.pipeline import check_steps

    try:
        check_steps(method, getattr(method, "steps", None))
    except ValueError as error:
        raise BenchmarkError(f"--methods {name}: {error}") from error


class _Runner:
    """Runs all methods on one prepared sample at a time and records the rows."""

    def __init__(self, config, protocol, methods, reusable, metric_status, on_row):
        self.config, self.protocol, self.methods = config, protocol, methods
        self.reusable, self.on_row = reusable, on_row
        self.store = Manifest(config.out / ROWS_FILE)
        self.rows: list[Row] = []
        self.reused = 0
        self.lpips = _maybe(LPIPSMetric, config.device, metric_status, "lpips")
        self.fid = _maybe(FIDMetric, config.device, metric_status, "fid")

    def run_sample(self, sample: Sample, total: int) -> None:
        todo = [m for m in self.config.methods if (sample.task.name, sample.key, m) not in self.reusable]
        for name in self.config.methods:
            if name not in todo:
                self.reused += 1
                self._record(self.reusable[(sample.task.name, sample.key, name)], total, store=False)
        if not todo:
            return
        try:
            prepared = prepare(sample, self.protocol, self.config.max_side, self.config.seed)
            self._save(sample, INPUT_DIR, prepared.lq)
            self._save(sample, GT_DIR, prepared.gt)
        except Exception as error:  # an unreadable pair fails its rows, not the run
            for name in todo:
                self._record(Row(sample.task.name, sample.key, name, "failed", error=_describe(error)), total)
            return
        for name in todo:
            self._record(self._run_method(sample, prepared, name), total)

    def _run_method(self, sample: Sample, prepared: Prepared, name: str) -> Row:
        row = Row(sample.task.name, sample.key, name, "failed")
        method = self.methods[name]
        if isinstance(method, Exception):
            row.error = f"could not load {name}: {_describe(method)}"
            return row
        if not applies(method.card, prepared.degradation.family):
            row.status, row.error = "skipped", why_not(method.card, prepared.degradation.family)
            return row
        try:
            restored = self._timed(row, method, prepared)
            row.details = getattr(method, "last_details", None)
            row.output = self._save(sample, method_slug(name), restored)
            self._measure(row, restored, prepared.gt)
            row.status = "ok"
        except MethodSkipped as skipped:
            row.status, row.error = "skipped", str(skipped)
        except Exception as error:  # a method failing on one image is reported in its row
            row.error = _describe(error)
        return row

    def _timed(self, row: Row, method: RestorationMethod, prepared: Prepared) -> np.ndarray:
        from irestore.io import image_to_tensor, tensor_to_rgb

        h, w = prepared.lq.shape[:2]
        reference = prepared.gt if method.card.oracle else None
        condition = Condition.from_degradation(prepared.degradation, self.config.seed, reference)
        with PeakMemory(self.config.device) as memory:
            start = time.perf_counter()
            restored = tensor_to_rgb(method.restore(image_to_tensor(prepared.lq), condition))
            row.seconds = time.perf_counter() - start
        row.megapixels = h * w / 1e6
        row.s_per_mp = row.seconds / row.megapixels
        row.peak_mb = memory.peak_mb
        if restored.shape != prepared.gt.shape:
            raise ValueError(f"{method.name} returned {restored.shape[1]}x{restored.shape[0]}, "
                             f"the ground truth is {prepared.gt.shape[1]}x{prepared.gt.shape[0]}")
        return restored

    def _measure(self, row: Row, restored: np.ndarray, gt: np.ndarray) -> None:
        from irestore.evaluate.metrics import measure

        scores = measure(restored, gt, self.protocol)
        row.psnr, row.ssim = scores["psnr"], scores["ssim"]
        if self.lpips is not None:
            row.lpips = self.lpips(restored, gt)

    def _save(self, sample: Sample, folder: str, rgb: np.ndarray) -> str:
        relative = Path("images") / sample.task.name / folder / Path(sample.key).with_suffix(".png")
        target = self.config.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, Image(rgb=np.clip(rgb, 0, 1).astype(np.float32)), format="PNG")
        return relative.as_posix()

    def _record(self, row: Row, total: int, store: bool = True) -> None:
        if store:
            self.store.append(asdict(row))
        self.rows.append(row)
        if self.on_row:
            self.on_row(row, len(self.rows), total)


def _maybe(factory, device: str, status: dict[str, str], name: str):
    if status.get(name):
        return None
    try:
        return factory(device)
    except MetricUnavailable as error:
        status[name] = str(error)
        return None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class PeakMemory:
    """Peak memory of a block: CUDA allocations on a GPU, else process RSS above its level at entry (MB)."""

    def __init__(self, device: str, interval: float = 0.005) -> None:
        self.device, self.interval = device, interval
        self.peak_mb: float | None = None
        self._stop = threading.Event()

    def __enter__(self) -> Self:
        import torch

        self._cuda = self.device.startswith("cuda") or (self.device == "auto" and torch.cuda.is_available())
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        self._process = psutil.Process()
        self._base = self._peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        import torch

        if self._cuda:
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.peak_mb = (self._peak - self._base) / 2**20


# --------------------------------------------------------------------------- aggregates


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _aggregate(suite: Suite, methods: tuple[str, ...], rows: list[Row]) -> list[Aggregate]:
    grouped: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        grouped[(row.task, row.method)].append(row)
    out = []
    for task in suite.tasks:
        for method in methods:
            group = grouped.get((task.name, method), [])
            ok = [r for r in group if r.status == "ok"]
            seconds, megapixels = sum(r.seconds or 0 for r in ok), sum(r.megapixels or 0 for r in ok)
            first_problem = next((r.error for r in group if r.status != "ok" and r.error), "")
            out.append(Aggregate(
                task.name, method, len(ok),
                failed=sum(r.status == "failed" for r in group),
                skipped=sum(r.status == "skipped" for r in group),
                psnr=_mean([r.psnr for r in ok]), ssim=_mean([r.ssim for r in ok]), lpips=_mean([r.lpips for r in ok]),
                s_per_mp=seconds / megapixels if megapixels else None,
                peak_mb=max((r.peak_mb for r in ok if r.peak_mb is not None), default=None),
                note=first_problem,
            ))
    return out


def _add_fid(aggregates: list[Aggregate], rows: list[Row], config: BenchmarkConfig, fid) -> None:
    if fid is None:
        return
    for agg in aggregates:
        ok = [r for r in rows if r.task == agg.task and r.method == agg.method and r.status == "ok"]
        outputs = [config.out / r.output for r in ok]
        truths = [config.out / "images" / r.task / GT_DIR / Path(r.key).with_suffix(".png") for r in ok]
        if len(ok) < 2:
            continue
        try:
            agg.fid = fid(outputs, truths)
        except (MetricUnavailable, OSError, ValueError) as error:
            agg.note = agg.note or f"FID failed: {error}"


def _averages(suite: Suite, methods: tuple[str, ...], aggregates: list[Aggregate]) -> dict[str, dict]:
    """Per method: mean PSNR/SSIM over the tasks it has numbers for (the paper's 'Average' column)."""
    out = {}
    for method in methods:
        scored = [a for a in aggregates if a.method == method and a.psnr is not None]
        out[method] = {
            "psnr": _mean([a.psnr for a in scored]),
            "ssim": _mean([a.ssim for a in scored]),
            "tasks": len(scored),
            "of": len(suite.tasks),
        }
    return out


def _notes(suite: Suite, config: BenchmarkConfig, protocol: Protocol) -> list[str]:
    notes = []
    if config.max_side:
        notes.append(f"images limited to {config.max_side} px per side (clean photos downscaled before degrading, "
                     "paired images centre-cropped): not comparable with full-resolution published numbers")
    if config.limit:
        notes.append(f"only the first {config.limit} images of each task (sorted by name)")
    if suite.published and protocol.name != suite.protocol:
        notes.append(f"published numbers were measured under protocol {suite.protocol}, this run under {protocol.name}")
    return notes


def _config_dict(config: BenchmarkConfig) -> dict:
    data = asdict(config)
    data["out"] = str(config.out)
    data["data_root"] = str(config.data_root) if config.data_root else None
    data["roots"] = {k: str(v) for k, v in config.roots.items()}
    data["methods"] = list(config.methods)
    data["require"] = list(config.require)
    return data


# --------------------------------------------------------------------------- plans against the oracle

ORACLE = "plan:oracle"


def plan_comparison(result: BenchmarkResult) -> list[dict]:
    """Per task, when ``plan:oracle`` ran: the PSNR of every method, the best *fixed* order (the one
    order of the true degradations, with its members, that is best on average over the task's images,
    from the oracle's per-order PSNRs), the camera-reverse order of the true degradations with their
    preferred members, and each method's gap to the oracle."""
    if ORACLE not in [m.name for m in result.methods]:
        return []
    out = []
    for task in result.tasks:
        rows = [r for r in result.rows if r.task == task.name and r.method == ORACLE and r.status == "ok" and r.details]
        orders, camera = defaultdict(list), []
        for row in rows:
            for order, psnr in row.details.get("orders", {}).items():
                orders[order].append(psnr)
            camera.append(row.details.get("orders", {}).get(row.details.get("camera_order")))
        complete = {o: float(np.mean(v)) for o, v in orders.items() if len(v) == len(rows)}
        best = max(complete, key=complete.get) if complete else None
        oracle = result.aggregate(task.name, ORACLE)
        entry = {"task": task.name, "label": task.label, "best_fixed_order": best,
                 "best_fixed_psnr": complete.get(best) if best else None,
                 "camera_order_psnr": float(np.mean(camera)) if camera and None not in camera else None, "methods": {}}
        for method in result.methods:
            agg = result.aggregate(task.name, method.name)
            if agg is None or agg.psnr is None:
                continue
            gap = oracle.psnr - agg.psnr if oracle is not None and oracle.psnr is not None else None
            entry["methods"][method.name] = {"psnr": agg.psnr, "gap_to_oracle": gap}
        out.append(entry)
    return out
