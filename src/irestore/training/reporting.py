"""What a run reports: a metrics log (RUN_DIR/metrics.jsonl and metrics.csv, TensorBoard
events under RUN_DIR/tensorboard when it is installed) and a Rich progress line on stderr."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from irestore.io import atomic_write_text

log = logging.getLogger(__name__)

JSONL_NAME = "metrics.jsonl"
CSV_NAME = "metrics.csv"
TRAIN_COLUMNS = ("kind", "step", "epoch", "elapsed_s", "loss", "lr", "grad_norm", "steps_per_s", "samples_per_s", "data_fraction")


class MetricsLog:
    """Append-only rows, one per logged step or validation. On resume, rows after the
    resumed step (written after the last saved state) are dropped so no step appears twice."""

    def __init__(self, run_dir: Path, metric_names: Sequence[str], resume_step: int | None = None):
        self.jsonl = run_dir / JSONL_NAME
        self.csv = run_dir / CSV_NAME
        self.columns = list(TRAIN_COLUMNS) + [name for name in metric_names if name not in TRAIN_COLUMNS]
        rows = self._kept_rows(resume_step)
        atomic_write_text(self.jsonl, "".join(json.dumps(row) + "\n" for row in rows))
        atomic_write_text(self.csv, self._csv_text(rows, header=True))
        self.tensorboard = _tensorboard(run_dir / "tensorboard", purge_step=None if resume_step is None else resume_step + 1)

    def _kept_rows(self, resume_step: int | None) -> list[dict]:
        if resume_step is None or not self.jsonl.is_file():
            return []
        rows = [json.loads(line) for line in self.jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [row for row in rows if row.get("step", 0) <= resume_step]

    def _csv_text(self, rows: list[dict], header: bool = False) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def write(self, row: dict) -> None:
        with self.jsonl.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        with self.csv.open("a", encoding="utf-8", newline="") as handle:
            handle.write(self._csv_text([row]))
        if self.tensorboard is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch") and math.isfinite(value):
                    self.tensorboard.add_scalar(f"{row['kind']}/{key}", value, row["step"])
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _tensorboard(folder: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        log.debug("tensorboard is not installed: metrics go to %s and %s only", JSONL_NAME, CSV_NAME)
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


class TrainProgress:
    """Step counter with loss, it/s and ETA on stderr (disabled on ranks other than 0)."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool, console: Console | None = None):
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        columns = (
            TextColumn("[bold]training[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.progress = Progress(*columns, console=self.console, disable=not enabled)
        self.task = self.progress.add_task("train", total=total_steps, completed=start_step, loss="-", rate="")

    def __enter__(self) -> TrainProgress:  # noqa: PYI034 (typing.Self needs Python 3.11)
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, step: int, loss: float, steps_per_s: float) -> None:
        self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", rate=f"{steps_per_s:.2f} it/s")

    def print(self, message: str) -> None:
        if self.enabled:
            self.progress.console.print(message)
