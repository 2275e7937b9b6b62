"""The live display of `irestore restore`: the batch counted in megapixels (so the rate and the
ETA hold for folders of mixed sizes) and, under it, the image in hand: its plan step and tiles."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from irestore.io import pixel_count


class BatchProgress:
    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=None), TextColumn("{task.fields[amount]}"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False, expand=False)
        self.batch = self.progress.add_task("restoring", total=None, amount="", rate="")
        self.image = self.progress.add_task("", total=None, amount="", rate="", visible=False)
        self.sizes: dict[str, float] = {}  # megapixels of each job to do, by relative path
        self.finished_mp = self.restored_mp = self.seconds = 0.0
        self.count = self.total_count = 0

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    @property
    def console(self) -> Console:
        return self.progress.console

    def todo(self, jobs) -> None:
        self.sizes = {str(job.relative): pixel_count(job.source) / 1e6 for job in jobs}
        self.total_count = len(jobs)
        self.progress.update(self.batch, total=max(sum(self.sizes.values()), 1e-6), completed=0)
        self._show_amount()

    def start(self, job) -> None:
        self.progress.update(self.image, description=f"  {job.relative}", total=None, completed=0,
                             amount="", visible=True)

    def inside(self, job, stage: str | None, done: int, total: int) -> None:
        """A plan step began (``stage``), or ``done`` of ``total`` tiles of the current pass are done."""
        if stage is not None:
            self.progress.update(self.image, rate=stage, total=None, completed=0, amount="")
            return
        self.progress.update(self.image, total=total, completed=done, amount=f"tile {done}/{total}")

    def finished(self, record: dict) -> None:
        size = self.sizes.get(record["relative"], 0.0)
        self.finished_mp += size
        self.count += 1
        if record["status"] == "done":
            self.restored_mp += record.get("megapixels", size)
            self.seconds += record.get("time_restore", 0.0)
            self.progress.update(self.batch, rate=f"{self.restored_mp / max(self.seconds, 1e-9):.3f} MP/s")
        self.progress.update(self.batch, completed=self.finished_mp)
        self.progress.update(self.image, visible=False)
        self._show_amount()

    def _show_amount(self) -> None:
        total = sum(self.sizes.values())
        self.progress.update(self.batch, amount=f"{self.finished_mp:.1f}/{total:.1f} MP, {self.count}/{self.total_count} images")
