"""Distributed training under real torchrun: 2 CPU processes on Gloo, the real CLI, real photos.

Each rank's IRESTORE_TRAIN_TRACE record (hashes of its samples, its gradient norm, a hash of its
weights after every step) shows what it trained on; the first step is redone here by hand, in
one process, from the same initial weights and the same two shards, to check that DDP averages.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from irestore.training import build_config, load_run_config
from irestore.training.data import BatchStream
from irestore.training.distributed import DistInfo
from irestore.training.loop import Trainer, build_datasets, step_generator
from irestore.training.state import load_state
from irestore.training.tasks import create_task, to_device
from irestore.training.trace import TRACE_ENV, read_trace, sample_hashes
from process_group import run_killing_the_group

RANKS = 2
# 24 samples = 12 per rank = 3 steps of 2 micro-batches of 2 per rank and epoch: 4 steps cross an
# epoch boundary, a resume after step 2 starts mid-epoch, and the micro-batches use DDP's no_sync
SETTINGS = {"model": "erunet-tiny", "degradations": "noise:20-50", "crop": 32, "batch_size": 2, "epoch_length": 24,
            "accumulate": 2, "val_samples": 1, "val_steps": 1, "val_every": 4, "workers": 0, "device": "cpu",
            "log_every": 1, "lr": 1e-3, "warmup_steps": 0, "schedule_steps": 4, "ema": 0.5, "seed": 3}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """16 real photo crops (64x64) from scikit-image's bundled photographs."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for n, image in enumerate((data.astronaut(), data.coffee(), data.chelsea(), data.rocket())):
        for k in range(4):
            y, x = 40 * k, 50 * (k % 3)
            Image.fromarray(np.ascontiguousarray(image[y : y + 128 : 2, x : x + 128 : 2])).save(root / f"photo{n}_{k}.png")
    return root


def torchrun(out: Path, trace: Path, *args: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS),
               "-m", "irestore", "train", "--out", str(out), *args]
    done = run_killing_the_group(command, timeout=120, env={**os.environ, TRACE_ENV: str(trace)})
    assert done.returncode == 0, done.stderr[-3000:]


def start(photos: Path, out: Path, trace: Path, max_steps: int) -> None:
    config = out.with_suffix(".json")
    config.write_text(json.dumps({**SETTINGS, "dataset": f"folder:{photos}"}))
    torchrun(out, trace, "--config", str(config), "--max-steps", str(max_steps))


@pytest.fixture(scope="module")
def whole(photos, tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted 4-step run on 2 ranks: (run folder, trace folder)."""
    root = tmp_path_factory.mktemp("whole")
    start(photos, root / "run", root / "trace", max_steps=4)
    return root / "run", root / "trace"


def test_each_rank_trains_on_its_own_samples_and_the_ranks_stay_identical(whole):
    _, trace = whole
    ranks = [read_trace(trace, rank) for rank in range(RANKS)]
    assert [[row["step"] for row in rows] for rows in ranks] == [[1, 2, 3, 4]] * RANKS
    for first, second in zip(*ranks):
        assert len(first["samples"]) == len(second["samples"]) == SETTINGS["batch_size"] * SETTINGS["accumulate"]
        assert not set(first["samples"]) & set(second["samples"]), f"step {first['step']}: the ranks share samples"
        assert first["weights"] == second["weights"], f"step {first['step']}: the ranks' weights differ"
        assert first["grad_norm"] == second["grad_norm"]
    # one epoch (steps 1-3) covers the 24 samples once, split between the ranks
    epoch = [h for rows in ranks for row in rows[:3] for h in row["samples"]]
    assert len(set(epoch)) == len(epoch) == SETTINGS["epoch_length"]


class Replay:
    """Both ranks' steps redone by hand in one process: each rank's local gradient on its own
    shard with its own draws, averaged, then the run's clipping, optimiser, schedule and EMA."""

    def __init__(self, run: Path, out: Path, text_encoder):
        self.config = config = build_config(load_run_config(run), {"out": str(out)})
        torch.manual_seed(config.seed)  # as `train` does before building the network
        self.task = create_task(config, torch.device("cpu"), torch.float32, text_encoder)
        self.trainer = Trainer(config, self.task, DistInfo(), torch.device("cpu"), torch.float32)
        self.streams = []
        for rank in range(RANKS):
            info = DistInfo(rank=rank, world_size=RANKS)
            dataset = build_datasets(config, info)[0]
            self.streams.append(BatchStream(dataset, info, config.batch_size, 0, config.seed, False, self.task.collate))

    def local_gradients(self, step: int, rank: int) -> tuple[list[torch.Tensor], list[str]]:
        network, config, hashes = self.task.network, self.config, []
        network.zero_grad(set_to_none=True)
        for micro in range(config.accumulate):
            batch = self.streams[rank].next()
            hashes += sample_hashes(batch)
            batch = to_device(batch, torch.device("cpu"), channels_last=self.trainer.channels_last)
            loss = self.task.loss(network, batch, step_generator(config.seed, step, micro, rank))
            (loss / config.accumulate).backward()
        return [p.grad.detach().clone() for p in network.parameters()], hashes

    def step(self) -> tuple[float, list[float], list[list[str]]]:
        """One step; returns the averaged gradient's norm, each rank's own norm and samples."""
        local = [self.local_gradients(self.trainer.step, rank) for rank in range(RANKS)]
        grads = [g for g, _ in local]
        for parameter, mean in zip(self.task.network.parameters(), (torch.stack(g).mean(0) for g in zip(*grads))):
            parameter.grad = mean
        norm = float(torch.nn.utils.clip_grad_norm_(self.task.network.parameters(), self.config.grad_clip))
        self.trainer.optimizer.step()
        self.trainer.scheduler.step()
        self.trainer.ema.update(self.task.network)
        self.trainer.step += 1
        own = [float(torch.linalg.vector_norm(torch.stack([g.norm() for g in gs]))) for gs in grads]
        return norm, own, [h for _, h in local]


def test_ddp_averages_the_ranks_gradients(whole, tmp_path, minilm):
    """All 4 steps redone in one process from the mean of both ranks' local gradients: the same
    samples, the logged gradient norms and rank 0's final weights and EMA. Removing DDP (each
    rank steps on its own gradient) or summing instead of averaging (norms twice as large) fails."""
    run, trace = whole
    replay = Replay(run, tmp_path / "replay", minilm)
    logged = [row for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if row["kind"] == "train"]
    traces = [read_trace(trace, rank) for rank in range(RANKS)]
    for step in range(4):
        norm, own, samples = replay.step()
        assert [traces[rank][step]["samples"] for rank in range(RANKS)] == samples
        assert logged[step]["grad_norm"] == pytest.approx(norm, rel=1e-5), f"step {step + 1}"
        assert traces[1][step]["grad_norm"] == pytest.approx(norm, rel=1e-5), f"step {step + 1}"
        assert all(abs(n - norm) > 1e-3 * norm for n in own)  # the check tells a rank's own gradient apart
    state = load_state(run / "state.pt")["trainer"]
    for name, value in replay.task.network.state_dict().items():
        torch.testing.assert_close(state["network"][name], value, rtol=0, atol=1e-5, msg=name)
    for name, value in replay.trainer.ema.module.state_dict().items():
        torch.testing.assert_close(state["ema"]["weights"][name], value, rtol=0, atol=1e-5, msg=f"ema {name}")


def test_a_resumed_2_rank_run_equals_an_uninterrupted_one(whole, photos, tmp_path):
    run, trace = whole
    split = tmp_path / "run"
    start(photos, split, tmp_path / "trace", max_steps=2)
    torchrun(split, tmp_path / "trace", "--resume", str(split), "--max-steps", "4")
    for rank in range(RANKS):
        assert read_trace(tmp_path / "trace", rank) == read_trace(trace, rank)  # same samples, gradients, weights
    a, b = load_state(split / "state.pt"), load_state(run / "state.pt")
    assert (a["epoch"], a["position"]) == (b["epoch"], b["position"]) == (1, 2)
    for key in ("network", "optimizer", "ema", "scheduler"):
        left, right = a["trainer"][key], b["trainer"][key]
        torch.testing.assert_close(left, right, rtol=0, atol=0, msg=key)
    last_a, last_b = load_file(split / "last" / "model.safetensors"), load_file(run / "last" / "model.safetensors")
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
