"""Sharded restore (--shard K/N) and `irestore manifest merge`: real files, real CLI runs, real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path, PureWindowsPath

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from irestore.batch.merge import latest_records, merge_folder
from irestore.batch.resume import SAME, finished_outputs
from irestore.batch.shard import COUNT_VAR, Shard, ShardError, hold, parse_shard, shard_from_env, shard_of
from irestore.cli.app import app
from irestore.devices import rank_device
from irestore.io import read_image

runner = CliRunner()
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
                 "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX", COUNT_VAR)


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """The tests' own process may run under a launcher (a CI job array): its variables must not leak in."""
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)


def _photos(folder: Path, names) -> Path:
    """A small real photo crop (its own noise) under each name."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    crop = data.astronaut()[100:260:4, 150:374:4].astype(np.float32)
    for seed, name in enumerate(names):
        noisy = crop + np.random.default_rng(seed).normal(0, 20, crop.shape)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / name)
    return folder


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("irestore-manifest*.jsonl"))
            for line in path.read_text().splitlines()]


def _restore(*args, env=None):
    return runner.invoke(app, ["restore", *map(str, args)], env=env)


# -- which images a shard owns -------------------------------------------------------------

PATHS = [f"{folder}/IMG_{i:05d}.jpg" for folder in ("2019", "2020/summer", "scans") for i in range(1000)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_are_disjoint_and_their_union_is_every_image(count):
    owners = {path: [k for k in range(count) if Shard(k, count).owns(path)] for path in PATHS}
    assert all(len(shards) == 1 for shards in owners.values())  # each image in exactly one shard


def test_shards_are_roughly_balanced():
    for count in (2, 4, 10):
        sizes = np.bincount([shard_of(path, count) for path in PATHS], minlength=count)
        expected = len(PATHS) / count
        assert sizes.min() >= 0.85 * expected and sizes.max() <= 1.15 * expected, sizes


def test_the_assignment_is_a_fixed_digest_of_the_posix_relative_path():
    # pinned: shards started by one version and resumed by the next must own the same images;
    # Python's salted hash() would differ in every process
    assert [shard_of(path, 7) for path in ("a.png", "2020/summer/IMG_00042.jpg", "ünïcødé/x y.tif")] == [2, 2, 0]
    assert shard_of(PureWindowsPath("2020\\summer\\IMG_00042.jpg"), 7) == shard_of("2020/summer/IMG_00042.jpg", 7)
    code = "from irestore.batch.shard import shard_of; print([shard_of(f'p{i}.png', 5) for i in range(40)])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert other.stdout.strip() == str([shard_of(f"p{i}.png", 5) for i in range(40)])


def test_dry_run_lists_only_the_shard_and_adding_files_moves_no_image(tmp_path):
    src, out = _photos(tmp_path / "in", [f"img{i:02d}.png" for i in range(10)]), tmp_path / "out"

    def listed(spec):
        result = _restore(src, out, "--model", "identity", "--dry-run", "--json", "--shard", spec)
        assert result.exit_code == 0, result.output
        return {json.loads(line)["input"] for line in result.stdout.splitlines()}

    before = [listed(f"{k}/3") for k in range(3)]
    assert set().union(*before) == {str(p) for p in src.glob("*.png")} and sum(map(len, before)) == 10
    assert before[1] == {str(src / name) for name in (f"img{i:02d}.png" for i in range(10)) if shard_of(name, 3) == 1}
    _photos(src / "000new", [f"more{i}.png" for i in range(8)])  # listed first: positions all move
    after = [listed(f"{k}/3") for k in range(3)]
    for k in range(3):
        assert {p for p in after[k] if "/000new/" not in p} == before[k]  # finished assignments unchanged
    assert sum(map(len, after)) == 18


# -- the --shard spec and --shard auto -------------------------------------------------------

def test_specs():
    assert parse_shard("0/3") == Shard(0, 3) and parse_shard("2/3") == Shard(2, 3) and parse_shard("0/1") == Shard(0, 1)
    for bad, says in [("3/2", "0-based"), ("3/3", "0-based"), ("-1/3", "0-based"), ("a/b", "whole numbers"),
                      ("0/0", "at least 1"), ("1", "whole numbers"), ("1/2/3", "whole numbers"), ("", "whole numbers")]:
        with pytest.raises(ShardError, match=says):
            parse_shard(bad, env={})


@pytest.mark.parametrize("env, shard", [
    ({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}, Shard(2, 4)),  # torchrun
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}, Shard(0, 2)),  # --array=0-1
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}, Shard(2, 3)),  # 1-3
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_STEP": "2"}, Shard(2, 3)),  # --array=0-4:2
    ({"JOB_COMPLETION_INDEX": "1", COUNT_VAR: "2"}, Shard(1, 2)),  # Kubernetes indexed Job
    ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "9"}, Shard(1, 2)),
])
def test_auto_reads_each_launcher(env, shard):
    found = parse_shard("auto", env=env)
    assert (found.index, found.count) == (shard.index, shard.count)
    assert found.source  # says where K/N came from


@pytest.mark.parametrize("env, says", [
    ({}, "none of RANK/WORLD_SIZE"),
    ({"RANK": "1"}, "WORLD_SIZE not set"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT not set"),
    ({"JOB_COMPLETION_INDEX": "0"}, f"{COUNT_VAR} not set"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not a whole number"),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}, "0-based"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "2"}, "not on the range"),
])
def test_auto_without_a_complete_launcher_environment_says_what_is_missing(env, says):
    with pytest.raises(ShardError, match=says):
        shard_from_env(env)


def test_bad_shards_exit_2_with_a_message(tmp_path):
    src = _photos(tmp_path / "in", ["a.png"])
    for spec, says in [("3/2", "0-based"), ("a/b", "whole numbers"), ("0/0", "at least 1"), ("auto", "none of RANK")]:
        result = _restore(src, tmp_path / "out", "--model", "identity", "--shard", spec)
        assert result.exit_code == 2, (spec, result.output)
        assert says in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_shard_without_images_has_nothing_to_do(tmp_path):
    src = _photos(tmp_path / "in", ["a.png"])
    empty = next(f"{k}/4" for k in range(4) if shard_of("a.png", 4) != k)
    result = _restore(src, tmp_path / "out", "--model", "identity", "--shard", empty)
    assert result.exit_code == 0 and "0 of 1 image(s)" in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_auto_shards_the_run_from_the_environment(tmp_path):
    src, out = _photos(tmp_path / "in", [f"img{i}.png" for i in range(6)]), tmp_path / "out"
    result = _restore(src, out, "--model", "identity", "--shard", "auto", "--no-report",
                      env={"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1"})
    assert result.exit_code == 0, result.output
    assert "shard 1/2 (from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT)" in result.output
    assert {r["relative"] for r in _records(out)} == {f"img{i}.png" for i in range(6) if shard_of(f"img{i}.png", 2) == 1}
    assert [p.name for p in out.glob("*.jsonl")] == ["irestore-manifest.shard-1-of-2.jsonl"]


# -- the GPU of a torchrun rank -------------------------------------------------------------

def test_each_torchrun_rank_takes_its_local_gpu():
    assert rank_device("cuda", {"LOCAL_RANK": "1"}) == "cuda:1"
    assert rank_device("cuda", {}) == "cuda"
    assert rank_device("cuda:0", {"LOCAL_RANK": "1"}) == "cuda:0"  # an explicit GPU is kept
    assert rank_device("cpu", {"LOCAL_RANK": "1"}) == "cpu"
    assert rank_device("auto", {"LOCAL_RANK": "0"}) == ("cuda:0" if torch.cuda.is_available() else "auto")
    with pytest.raises(ValueError, match="not a GPU number"):
        rank_device("cuda", {"LOCAL_RANK": "one"})
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="nproc-per-node"):
            rank_device("cuda", {"LOCAL_RANK": str(torch.cuda.device_count())})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to see the refused GPU named")
def test_a_sharded_run_under_torchrun_asks_for_its_local_rank_gpu(tmp_path):
    src = _photos(tmp_path / "in", ["a.png", "b.png"])
    result = _restore(src, tmp_path / "out", "--model", "identity", "--device", "cuda", "--shard", "auto",
                      env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert result.exit_code == 2 and "'cuda:1'" in result.output, result.output


# -- manifests, reports, resume ---------------------------------------------------------------

def test_a_shard_resumes_from_every_manifest_and_reports_only_its_images(tmp_path):
    names = [f"img{i}.png" for i in range(6)]
    src, out = _photos(tmp_path / "in", names), tmp_path / "out"
    assert _restore(src, out, "--model", "identity", "--no-report", "--files-from",
                    _listing(tmp_path, names[:4])).exit_code == 0  # an unsharded run did 4 of 6
    result = _restore(src, out, "--model", "identity", "--json", "--shard", "0/2")
    assert result.exit_code == 0, result.output
    rows = {r["relative"]: r for r in map(json.loads, result.stdout.splitlines())}
    mine = {name for name in names if shard_of(name, 2) == 0}
    assert set(rows) == mine
    for name, row in rows.items():  # the unsharded run's records count: no image redone
        assert (row["status"], row.get("reason")) == (("skipped", SAME) if name in names[:4] else ("done", None))
    report = json.loads((out / "irestore-report.shard-0-of-2.json").read_text())
    assert {r["relative"] for r in report["images"]} == mine  # the other shard's images are not in it
    assert not (out / "irestore-report.json").exists()


def _listing(tmp_path: Path, names) -> Path:
    path = tmp_path / "list.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def test_the_same_shard_twice_at_once_is_refused(tmp_path):
    src, out = _photos(tmp_path / "in", ["a.png", "b.png", "c.png"]), tmp_path / "out"
    with hold(out / "irestore-manifest.shard-1-of-2.jsonl", "busy"):  # what a running shard 1/2 holds
        result = _restore(src, out, "--model", "identity", "--shard", "1/2")
        assert result.exit_code == 2 and "already running" in result.output, result.output
        assert _restore(src, out, "--model", "identity", "--shard", "0/2", "--no-report").exit_code == 0
        merge = runner.invoke(app, ["manifest", "merge", str(out)])
        assert merge.exit_code == 2 and "running restore" in merge.output, merge.output
    assert {p.name for p in out.glob("*.jsonl")} == {"irestore-manifest.shard-0-of-2.jsonl",
                                                      "irestore-manifest.shard-1-of-2.jsonl"}  # nothing merged


def test_a_running_unsharded_restore_holds_the_main_manifest(tmp_path):
    src, out = _photos(tmp_path / "in", ["a.png"]), tmp_path / "out"
    out.mkdir()
    (out / "irestore-manifest.shard-0-of-1.jsonl").write_text(_line(str(out / "a.png"), "done", 1.0))
    with hold(out / "irestore-manifest.jsonl", "busy"):  # what a running restore without --shard holds
        again = _restore(src, out, "--model", "identity")
        assert again.exit_code == 2 and "a restore without --shard is already running" in again.output, again.output
        merge = runner.invoke(app, ["manifest", "merge", str(out)])
        assert merge.exit_code == 2 and "running restore" in merge.output, merge.output
    assert runner.invoke(app, ["manifest", "merge", str(out)]).exit_code == 0
    assert [p.name for p in out.glob("*.jsonl")] == ["irestore-manifest.jsonl"]


def _line(output: str, status: str, at: float | None, **fields) -> str:
    record = {"relative": Path(output).name, "input": "in/" + Path(output).name, "output": output, "status": status}
    return json.dumps(record | ({"finished_at": at} if at is not None else {}) | fields) + "\n"


def test_merge_keeps_the_latest_record_per_output_whatever_its_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    a, b, c = (str(out / name) for name in ("a.png", "b.png", "c.png"))
    for path in (a, c):
        Path(path).write_bytes(b"an output")
    (out / "irestore-manifest.jsonl").write_text(
        _line(a, "done", None, run="old") + _line(b, "done", 50.0, run="unsharded, after the shards"))
    (out / "irestore-manifest.shard-0-of-2.jsonl").write_text(
        _line(a, "done", 10.0, run="shard") + _line(b, "done", 20.0, run="shard") + '{"relative": "torn')
    (out / "irestore-manifest.shard-1-of-2.jsonl").write_text(
        _line(c, "done", 11.0, run="shard") + _line(c, "failed", 12.0, run="retry"))
    merged = merge_folder(out)
    assert [p.name for p in merged.shards] == ["irestore-manifest.shard-0-of-2.jsonl", "irestore-manifest.shard-1-of-2.jsonl"]
    assert [p.name for p in out.glob("*.jsonl")] == ["irestore-manifest.jsonl"]
    records = _records(out)
    assert [(Path(r["output"]).name, r["status"], r["run"]) for r in records] == [
        ("a.png", "done", "shard"), ("c.png", "done", "shard"), ("c.png", "failed", "retry"),
        ("b.png", "done", "unsharded, after the shards")]
    assert (merged.records, merged.kept) == (6, 4)
    assert finished_outputs(out)[os.path.normcase(c)]["run"] == "shard"  # the failed retry hides no output
    assert merge_folder(out).shards == [] and len(_records(out)) == 4  # a second merge has nothing to do


def test_a_merge_that_cannot_write_keeps_the_shard_manifests(tmp_path):
    out = tmp_path / "out"
    (out / "irestore-manifest.jsonl").mkdir(parents=True)  # the merged file cannot be put there
    shard = out / "irestore-manifest.shard-0-of-1.jsonl"
    shard.write_text(_line(str(out / "a.png"), "done", 1.0))
    result = runner.invoke(app, ["manifest", "merge", str(out)])
    assert result.exit_code == 1 and "cannot merge" in result.output, result.output
    assert [json.loads(line)["status"] for line in shard.open()] == ["done"]  # not removed: no record lost


def test_latest_records_drops_a_finished_output_that_is_gone(tmp_path):
    gone = str(tmp_path / "gone.png")
    records = [json.loads(_line(gone, "done", 1.0)), json.loads(_line(gone, "failed", 2.0))]
    assert [r["status"] for r in latest_records(records)] == ["failed"]


def test_merge_usage(tmp_path):
    missing = runner.invoke(app, ["manifest", "merge", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such folder" in missing.output and "Traceback" not in missing.output
    nothing = runner.invoke(app, ["manifest", "merge", str(tmp_path)])
    assert nothing.exit_code == 0 and "nothing to merge" in nothing.output


# -- three shards at once, in real processes ---------------------------------------------------

def test_three_concurrent_shards_into_one_output_then_merge_and_resume(tmp_path):
    names = [f"img{i}.png" for i in range(7)] + ["nested/a.png", "nested/b.png"]
    src, out = _photos(tmp_path / "in", names), tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "irestore", "restore", str(src), str(out), "--model", "identity",
                               "--shard", f"{k}/3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=env) for k in range(3)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
    records = _records(out)
    assert sorted(r["relative"] for r in records) == sorted(names)  # one record per image: no line lost or doubled
    assert all(r["status"] == "done" and isinstance(r["finished_at"], float) for r in records)
    for k in range(3):
        mine = [json.loads(line)["relative"] for line in (out / f"irestore-manifest.shard-{k}-of-3.jsonl").open()]
        assert mine and all(shard_of(name, 3) == k for name in mine)
        report = json.loads((out / f"irestore-report.shard-{k}-of-3.json").read_text())
        assert sorted(r["relative"] for r in report["images"]) == sorted(mine)
    for name in names:  # identity: every output whole, with the input's pixels
        assert np.array_equal(read_image(out / name).rgb, read_image(src / name).rgb)
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind

    merge = runner.invoke(app, ["manifest", "merge", str(out)])
    assert merge.exit_code == 0, merge.output
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        [Path(n).name for n in names if "/" not in n] + ["irestore-manifest.jsonl", "irestore-report.html",
                                                         "irestore-report.json", "irestore-report.md"])
    merged = [json.loads(line) for line in (out / "irestore-manifest.jsonl").open()]
    assert sorted(r["relative"] for r in merged) == sorted(names)
    report = json.loads((out / "irestore-report.json").read_text())
    assert sorted(r["relative"] for r in report["images"]) == sorted(names)
    assert report["summary"]["metrics"].get("brisque") == "computed"
    assert all((out / path).is_file() for r in report["images"] for path in r["previews"].values())

    for extra in ([], ["--shard", "2/3"]):  # unsharded, and a shard, resume from the merged manifest
        rerun = _restore(src, out, "--model", "identity", "--json", "--no-report", *extra)
        assert rerun.exit_code == 0, rerun.output
        rows = [json.loads(line) for line in rerun.stdout.splitlines()]
        assert rows and {(r["status"], r["reason"]) for r in rows} == {("skipped", SAME)}
