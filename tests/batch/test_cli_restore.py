"""`irestore restore` end to end: real files, the real pretrained FFDNet, real subprocesses."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from irestore.cli.app import app
from irestore.io import read_image
from paths import TESTS

runner = CliRunner()
ORIENTATION = 0x0112


def _photo(h=40, w=56, seed=0):
    """A small real photo crop with noise, so the denoiser has work to do."""
    from skimage import data

    img = data.astronaut()[100 : 100 + h * 4 : 4, 150 : 150 + w * 4 : 4].astype(np.float32)
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)


def _photos(folder: Path, *names: str) -> Path:
    """``folder`` holding a small photo (its own noise seed) under each name."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        PILImage.fromarray(_photo(seed=seed)).save(folder / name)
    return folder


def make_tricky_folder(root: Path) -> dict[str, dict]:
    """Every input kind the tool promises to handle, plus broken files. Returns expectations."""
    rgb = _photo()
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "spaces and ünïcødé").mkdir()
    cases = {}

    def put(rel, writer, **expect):
        path = root / rel
        writer(path)
        cases[rel] = expect

    put("rgb8.png", lambda p: PILImage.fromarray(rgb).save(p), size=(40, 56), depth=8)
    put("nested/rgb16.png", lambda p: cv2.imwrite(str(p), (rgb.astype(np.uint16) * 257)[..., ::-1]), size=(40, 56), depth=16)
    put("nested/gray.png", lambda p: PILImage.fromarray(rgb[..., 0]).save(p), size=(40, 56), depth=8)
    rgba = np.dstack([rgb, np.linspace(0, 255, 40 * 56).reshape(40, 56).astype(np.uint8)])
    put("nested/deeper/alpha.png", lambda p: PILImage.fromarray(rgba).save(p), size=(40, 56), depth=8, alpha=True)
    put("palette.png", lambda p: PILImage.fromarray(rgb).convert("P", palette=PILImage.ADAPTIVE).save(p), size=(40, 56), depth=8)

    def rotated_jpeg(p):
        exif = PILImage.Exif()
        exif[ORIENTATION] = 6  # stored sideways: viewers rotate 90° clockwise
        PILImage.fromarray(rgb).save(p, quality=95, exif=exif)

    put("spaces and ünïcødé/rotated phoTo.jpg", rotated_jpeg, size=(56, 40), depth=8)
    put("cmyk.jpg", lambda p: PILImage.fromarray(rgb).convert("CMYK").save(p, quality=95), size=(40, 56), depth=8)
    put("deep.tif", lambda p: cv2.imwrite(str(p), (rgb.astype(np.uint16) * 257)[..., ::-1]), size=(40, 56), depth=16)
    put("photo.webp", lambda p: PILImage.fromarray(rgb).save(p, lossless=True), size=(40, 56), depth=8)
    put("photo.bmp", lambda p: PILImage.fromarray(rgb).save(p), size=(40, 56), depth=8)
    # broken inputs
    put("empty.png", lambda p: p.write_bytes(b""), error="empty")
    put("nested/truncated.png", lambda p: p.write_bytes((root / "rgb8.png").read_bytes()[:300]), error="")
    put("notes.jpg", lambda p: p.write_text("this is not an image"), error="not an image")
    return cases


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "irestore-manifest.jsonl").read_text().splitlines()]


def test_tricky_folder_restores_faithfully_and_loses_nothing(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    cases = make_tricky_folder(src)
    (src / "rgb8.txt").write_text("remove the noise\n")  # sidecar prompt
    before = _hashes(src)

    result = runner.invoke(app, ["restore", str(src), str(out), "--model", "ffdnet-color", "--prompt", "a photo"])
    assert result.exit_code == 1, result.output  # some inputs are broken
    assert _hashes(src) == before  # inputs untouched

    records = {r["relative"]: r for r in _manifest(out)}
    assert set(records) == set(cases)
    for rel, expect in cases.items():
        record = records[rel]
        if "error" in expect:
            assert record["status"] == "failed"
            assert rel.split("/")[-1] in record["error"] and expect["error"] in record["error"].lower()
            assert not (out / rel).exists()
            continue
        assert record["status"] == "done", record
        restored = read_image(out / rel)
        original = read_image(src / rel)
        assert restored.rgb.shape[:2] == expect["size"]
        assert restored.bit_depth == expect["depth"]
        assert restored.format == original.format
        if expect.get("alpha"):
            assert np.array_equal(restored.alpha, original.alpha)
        # the denoiser changed the pixels (it restored something), but the image is the same photo
        assert 0 < np.abs(restored.rgb - original.rgb).mean() < 0.1
    # what the user typed for this run beats a sidecar lying beside the image
    assert records["rgb8.png"]["prompt"] == "a photo" and records["rgb8.png"]["prompt_source"] == "--prompt"
    assert PILImage.open(out / "palette.png").mode == "P" and PILImage.open(out / "cmyk.jpg").mode == "CMYK"  # modes kept
    assert records["photo.bmp"]["prompt"] == "a photo" and records["photo.bmp"]["prompt_source"] == "--prompt"
    assert "empty.png" in result.output and "failed" in result.output

    # a rerun recomputes nothing that finished and retries only the failures
    again = runner.invoke(app, ["restore", str(src), str(out), "--model", "ffdnet-color", "--prompt", "a photo", "--json"])
    rows = [json.loads(line) for line in again.stdout.splitlines()]
    assert {r["relative"] for r in rows if r["status"] == "skipped"} == {k for k, v in cases.items() if "error" not in v}
    assert {r["relative"] for r in rows if r["status"] == "failed"} == {k for k, v in cases.items() if "error" in v}


def test_json_dry_run_prompt_file_and_format(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "a").mkdir(parents=True)
    PILImage.fromarray(_photo()).save(src / "a" / "one.png")
    PILImage.fromarray(_photo(seed=1)).save(src / "two.png")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"path": "a/one.png", "prompt": "from the file"}) + "\n")

    dry = runner.invoke(app, ["restore", str(src), str(out), "--dry-run", "--json", "--prompt-file", str(prompts)])
    assert dry.exit_code == 0
    planned = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [Path(p["input"]).name for p in planned] == ["one.png", "two.png"]
    assert planned[0]["prompt"] == "from the file" and planned[0]["prompt_source"] == "prompt-file"
    assert not out.exists()

    result = runner.invoke(app, ["restore", str(src), str(out), "--json", "--format", "jpg", "--jpeg-quality", "90"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # stdout is pure JSON lines
    assert [r["status"] for r in rows] == ["done", "done"]
    assert (out / "a" / "one.jpg").is_file() and read_image(out / "two.jpg").format == "JPEG"

    # a dry run over a finished output says what it would skip, and why
    again = runner.invoke(app, ["restore", str(src), str(out), "--dry-run", "--json", "--format", "jpg", "--jpeg-quality", "90"])
    assert [(Path(p["input"]).name, p["action"]) for p in map(json.loads, again.stdout.splitlines())] == [
        ("one.png", "skip"), ("two.png", "skip")]
    assert "--overwrite" in json.loads(again.stdout.splitlines()[0])["reason"] and "0 image(s) would be restored, 2 skipped" in again.output
    (out / "two.jpg").unlink()
    redo = runner.invoke(app, ["restore", str(src), str(out), "--dry-run", "--json", "--format", "jpg", "--jpeg-quality", "90"])
    assert [p["action"] for p in map(json.loads, redo.stdout.splitlines())] == ["skip", "restore"]


def test_prompt_precedence_is_printed_and_followed(tmp_path):
    src = _photos(tmp_path / "in", "a.png", "b.png", "c.png")
    (src / "a.txt").write_text("sidecar of a\n")
    (src / "b.txt").write_text("sidecar of b\n")
    table = tmp_path / "prompts.csv"
    table.write_text("path,prompt\nb.png,row of b\n")

    def planned(*extra):
        result = runner.invoke(app, ["restore", str(src), str(tmp_path / "out"), "--dry-run", "--json", *extra])
        assert result.exit_code == 0, result.output
        assert "--prompt-file row > --prompt > sidecar" in result.stderr
        return {Path(p["input"]).name: (p["prompt"], p["prompt_source"]) for p in map(json.loads, result.stdout.splitlines())}

    assert planned("--prompt-file", str(table), "--prompt", "typed") == {
        "a.png": ("typed", "--prompt"), "b.png": ("row of b", "prompt-file"), "c.png": ("typed", "--prompt")}
    assert planned("--prompt-from-caption") == {
        "a.png": ("sidecar of a", "sidecar"), "b.png": ("sidecar of b", "sidecar"), "c.png": ("", "caption")}


def test_symlinks_are_followed_and_outputs_take_the_links_names(tmp_path):
    src, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    (src / "real").mkdir(parents=True)
    elsewhere.mkdir()
    PILImage.fromarray(_photo(seed=1)).save(src / "gray.png")
    PILImage.fromarray(_photo(seed=2)).save(src / "real" / "inner.png")
    PILImage.fromarray(_photo(seed=3)).save(elsewhere / "target.png")
    (src / "link.png").symlink_to(src / "gray.png")
    (src / "outside.png").symlink_to(elsewhere / "target.png")
    (src / "linked-folder").symlink_to(src / "real", target_is_directory=True)
    (src / "real" / "loop").symlink_to(src, target_is_directory=True)  # a cycle: skipped, not walked forever
    (src / "broken.png").symlink_to(tmp_path / "missing.png")

    result = runner.invoke(app, ["restore", str(src), str(out), "--model", "identity", "--json", "--no-report"])
    assert result.exit_code == 1, result.output  # the broken link fails, by name
    rows = {r["relative"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"gray.png", "link.png", "outside.png", "real/inner.png", "linked-folder/inner.png", "broken.png"}
    assert rows["broken.png"]["status"] == "failed" and "broken.png" in rows["broken.png"]["error"]
    for name, origin in [("link.png", src / "gray.png"), ("outside.png", elsewhere / "target.png"),
                         ("linked-folder/inner.png", src / "real" / "inner.png")]:
        assert rows[name]["status"] == "done"
        assert not (out / name).is_symlink()
        assert np.array_equal(read_image(out / name).rgb, read_image(origin).rgb)  # identity: the target's pixels
    assert not (out / "target.png").exists()


def test_two_inputs_mapped_to_one_output_are_refused_naming_both(tmp_path):
    src = _photos(tmp_path / "in", "a.png", "a.jpg")
    result = runner.invoke(app, ["restore", str(src), str(tmp_path / "out"), "--format", "png"])
    assert result.exit_code == 2
    assert "a.jpg" in result.output and "a.png" in result.output and "both" in result.output
    assert not (tmp_path / "out").exists()


def test_files_from_entries_outside_input_are_refused(tmp_path):
    src = _photos(tmp_path / "in", "inside.png")
    _photos(tmp_path, "outside.png")
    listing = tmp_path / "list.txt"
    listing.write_text("inside.png\n../outside.png\n")
    result = runner.invoke(app, ["restore", str(src), str(tmp_path / "out"), "--files-from", str(listing)])
    assert result.exit_code == 2
    assert "line 2" in result.output and "outside.png" in result.output and "outside INPUT" in result.output


def test_rerun_with_other_settings_redoes_the_outputs_it_names(tmp_path):
    src, out = _photos(tmp_path / "in", "p0.png", "p1.png", "p2.png"), tmp_path / "out"
    first = runner.invoke(app, ["restore", str(src), str(out), "--model", "identity", "--no-report"])
    assert first.exit_code == 0, first.output
    same = runner.invoke(app, ["restore", str(src), str(out), "--model", "identity", "--json", "--no-report"])
    assert [r["status"] for r in map(json.loads, same.stdout.splitlines())] == ["skipped"] * 3

    dry = runner.invoke(app, ["restore", str(src), str(out), "--model", "ffdnet-color", "--dry-run", "--json"])
    planned = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [p["action"] for p in planned] == ["restore"] * 3
    assert 'model: "identity" -> "ffdnet-color"' in planned[0]["reason"]
    other = runner.invoke(app, ["restore", str(src), str(out), "--model", "ffdnet-color", "--json", "--no-report"])
    assert other.exit_code == 0, other.output
    assert [r["status"] for r in map(json.loads, other.stdout.splitlines())] == ["done"] * 3
    assert "3 existing output(s) were restored again" in other.stderr
    assert not np.array_equal(read_image(out / "p0.png").rgb, read_image(src / "p0.png").rgb)  # denoised now

    quality = runner.invoke(app, ["restore", str(src), str(out), "--model", "ffdnet-color", "--json", "--no-report",
                                  "--jpeg-quality", "80"])  # does not concern PNG outputs
    assert [r["status"] for r in map(json.loads, quality.stdout.splitlines())] == ["skipped"] * 3


def test_resume_trusts_a_matching_record_and_checks_any_other_output(tmp_path):
    src, out = _photos(tmp_path / "in", "p0.png", "p1.png"), tmp_path / "out"
    args = ["restore", str(src), str(out), "--model", "identity", "--json", "--no-report"]
    assert runner.invoke(app, args).exit_code == 0
    # p0: garbage of the same size with the recorded mtime is trusted (the record is not re-decoded);
    # p1: truncated, so its size no longer matches: decoded, found incomplete, redone
    for name, data in (("p0.png", None), ("p1.png", (out / "p1.png").read_bytes()[:200])):
        path, stat = out / name, (out / name).stat()
        path.write_bytes(data if data is not None else b"x" * stat.st_size)
        if data is None:
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rows = {r["relative"]: r for r in map(json.loads, runner.invoke(app, args).stdout.splitlines())}
    assert rows["p0.png"]["status"] == "skipped" and rows["p1.png"]["status"] == "done"
    assert read_image(out / "p1.png").rgb.shape == (40, 56, 3)


def test_progress_inside_an_image_and_the_tile_used_are_reported(tmp_path):
    from irestore.batch import Manifest, RestoreOptions, plan_jobs, run_batch
    from irestore.pipeline import load_model

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    PILImage.fromarray(np.repeat(np.repeat(_photo(), 3, 0), 3, 1)).save(src / "big.png")  # 120 x 168
    PILImage.fromarray(_photo(seed=1)[:32, :32]).save(src / "small.png")
    jobs = plan_jobs(src, out)
    events, todo = [], []
    summary = run_batch(jobs, load_model("ffdnet-color", device="cpu"), RestoreOptions(tile=64, tile_overlap=16),
                        Manifest(out / "irestore-manifest.jsonl"), on_todo=todo.extend,
                        on_progress=lambda job, stage, done, total: events.append((job.relative.name, done, total)))
    assert summary.done == 2 and [job.relative.name for job in todo] == ["big.png", "small.png"]
    big = [(done, total) for name, done, total in events if name == "big.png"]
    assert big[0] == (0, big[0][1]) and big[-1] == (big[0][1], big[0][1]) and big[0][1] >= 6  # every tile, in order
    assert [done for done, _ in big] == sorted(done for done, _ in big)
    assert not [e for e in events if e[0] == "small.png"]  # smaller than a tile: one pass, no tiles
    records = {r["relative"]: r for r in _manifest(out)}
    assert records["big.png"]["tile_used"] == [64] and records["small.png"]["tile_used"] is None
    assert records["big.png"]["tile"] == 64


def test_reference_adds_psnr_and_ssim(tmp_path):
    src, ref, out = tmp_path / "in", tmp_path / "ref", tmp_path / "out"
    src.mkdir()
    ref.mkdir()
    from skimage import data

    clean = data.astronaut()[100:164, 150:214]
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    PILImage.fromarray(noisy).save(src / "x.png")
    PILImage.fromarray(clean).save(ref / "x.png")
    result = runner.invoke(app, ["restore", str(src), str(out), "--reference", str(ref), "--json"])
    row = json.loads(result.stdout.splitlines()[0])
    from irestore.evaluate.metrics import psnr

    noisy_psnr = psnr(noisy / 255.0, clean / 255.0)
    assert row["psnr"] > noisy_psnr + 3  # FFDNet really denoised
    assert 0 < row["ssim"] <= 1
    assert "mean PSNR" in result.output
    # and one row per image: its input and output PSNR, as in the manifest
    line = next(ln for ln in result.stderr.splitlines() if "x.png" in ln and "dB" in ln)
    assert f"{row['psnr_input']:.2f} dB" in line and f"{row['psnr']:.2f} dB" in line and row["plan"] in line
    assert abs(row["psnr_input"] - noisy_psnr) < 0.01


@pytest.mark.parametrize(
    "args,message",
    [
        (["--prompt-from-caption", "--captioner", "blip"], "captioner"),
        (["--format", "gif"], "--format gif"),
        (["--sampler", "heun"], "--sampler heun"),
        (["--model", "/nonexistent/model"], "cannot load model"),
        (["--tile", "32", "--tile-overlap", "32"], "--tile 32 must be larger than --tile-overlap 32"),
        (["--model", "allinone-small", "--steps", "101"], "T = 100"),
        (["--max-memory", "lots"], "--max-memory lots"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(tmp_path, args, message):
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(_photo()).save(src / "x.png")
    result = runner.invoke(app, ["restore", str(src), str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_output_equal_to_input_is_refused_and_nested_output_is_excluded(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(_photo()).save(src / "x.png")
    same = runner.invoke(app, ["restore", str(src), str(src)])
    assert same.exit_code == 2 and "overwrite" in same.output
    nested = src / "restored"
    first = runner.invoke(app, ["restore", str(src), str(nested), "--json"])
    assert first.exit_code == 0
    second = runner.invoke(app, ["restore", str(src), str(nested), "--json", "--overwrite"])
    assert [json.loads(x)["relative"] for x in second.stdout.splitlines()] == ["x.png"]  # its own outputs not re-read


def test_max_pixels_failure_is_reported_and_the_batch_goes_on(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(_photo(40, 56)).save(src / "big.png")
    PILImage.fromarray(_photo(20, 20)[:20, :20]).save(src / "small.png")
    result = runner.invoke(app, ["restore", str(src), str(tmp_path / "out"), "--max-pixels", "1000", "--json"])
    rows = {json.loads(x)["relative"]: json.loads(x) for x in result.stdout.splitlines()}
    assert result.exit_code == 1
    assert rows["big.png"]["status"] == "failed" and "max-pixels" in rows["big.png"]["error"]
    assert rows["small.png"]["status"] == "done"


def test_diffusion_checkpoint_runs_through_the_cli(tmp_path):
    """A (tiny, random) restorer checkpoint is loaded through the production path by --model PATH."""
    import torch

    from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
    from irestore.diffusion.sde import SDEConfig
    from irestore.registry import create_network

    net = create_network("erunet-tiny", text_dim=384)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=384, name="tiny")
    checkpoint = save_checkpoint(tmp_path / "ck", net, info)
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(_photo()).save(src / "x.png")
    args = ["restore", str(src), str(tmp_path / "out"), "--model", str(checkpoint), "--steps", "2", "--json", "--seed", "7"]
    result = runner.invoke(app, [*args, "--prompt", "remove the rain", "--sampler", "ddim"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.splitlines()[0])
    assert row["model"] == "tiny" and row["steps"] == 2 and row["sampler"] == "ddim" and len(row["model_hash"]) == 16
    assert read_image(tmp_path / "out" / "x.png").rgb.shape == (40, 56, 3)
    del torch


# -- real processes: crash and interrupt ------------------------------------------------

def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "irestore.cli", *map(str, args)]


def _wait_for_done(manifest: Path, count: int, proc, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if manifest.is_file() and sum('"status": "done"' in ln for ln in manifest.read_text().splitlines()) >= count:
            return
        assert proc.poll() is None, "batch ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("batch made no progress")


def _big_folder(root: Path, n=8) -> None:
    root.mkdir()
    for i in range(n):
        PILImage.fromarray(np.repeat(np.repeat(_photo(64, 64, seed=i), 4, 0), 4, 1)).save(root / f"img{i:02d}.png")


def test_sigkill_mid_batch_then_rerun_completes_without_recomputing(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _big_folder(src)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli("restore", src, out, "--json"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    _wait_for_done(out / "irestore-manifest.jsonl", 2, proc)
    proc.kill()
    proc.wait()
    finished = {r["relative"] for r in _manifest(out) if r["status"] == "done"}
    assert 2 <= len(finished) < 8

    rerun = subprocess.run(_cli("restore", src, out, "--json"), capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    rows = [json.loads(line) for line in rerun.stdout.splitlines()]
    skipped = {r["relative"] for r in rows if r["status"] == "skipped"}
    assert finished <= skipped  # finished images were not recomputed
    assert {r["relative"] for r in rows if r["status"] == "done"} | skipped == {f"img{i:02d}.png" for i in range(8)}
    for i in range(8):
        assert read_image(out / f"img{i:02d}.png").rgb.shape == (256, 256, 3)
    # no partial outputs, and temp files of a write cut off by the kill were cleaned up
    report = ["irestore-report.json", "irestore-report.md", "irestore-report.html", "irestore-report-files"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"img{i:02d}.png" for i in range(8)] + ["irestore-manifest.jsonl"] + report
    )
    listed = json.loads((out / "irestore-report.json").read_text())["images"]
    assert [r["relative"] for r in listed] == [f"img{i:02d}.png" for i in range(8)] and {r["status"] for r in listed} == {"done"}


def test_ctrl_c_finishes_the_current_image_and_exits_130(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _big_folder(src)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_cli("restore", src, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_done(out / "irestore-manifest.jsonl", 1, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    records = _manifest(out)
    assert all(r["status"] == "done" for r in records) and 1 <= len(records) < 8
    for record in records:
        assert read_image(record["output"]).rgb.shape == (256, 256, 3)
    # the report lists exactly the finished images, each with its previews
    listed = json.loads((out / "irestore-report.json").read_text())["images"]
    assert sorted(r["relative"] for r in listed) == sorted(r["relative"] for r in records)
    assert sorted(r["relative"] for r in listed) == sorted(p.name for p in out.glob("img*.png"))
    assert all((out / name).is_file() for r in listed for name in r["previews"].values())
    by_name = {r["relative"]: r for r in records}
    for row in listed:  # what the plan did, from the manifest
        details = by_name[row["relative"]]["plan_details"]
        assert row["plan"] == by_name[row["relative"]]["plan"]
        assert row["plan_search"] == {"evaluations": len(details["evaluations"]), "score_before": details["score_before"],
                                      "score_after": details["score_after"]}


SLOW_CLI = TESTS / "slow_cli.py"


def _interrupt_after_starts(tmp_path, starts: int, signals: int):
    """Restore 12 images with the 1 s/image stand-in; when the stand-in has started image number
    ``starts``, send ``signals`` SIGINTs. Returns (process, stderr, stand-in starts, done records)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(12):
        PILImage.fromarray(_photo(seed=i)).save(src / f"img{i:02d}.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IRESTORE_TEST_SLOW_S": "1.0"}
    args = [sys.executable, str(SLOW_CLI), "restore", str(src), str(out), "--model", "slow-standin", "--no-report"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines, seen = [], 0
    for line in proc.stderr:
        lines.append(line)
        seen += line.startswith("slow-standin: started")
        if seen == starts:
            break
    time.sleep(0.3)  # inside the stand-in's 1 s on image number `starts`
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    rest = proc.stderr.read()  # to the end: the process exits
    proc.wait(timeout=60)
    stderr = "".join(lines) + rest
    done = [r for r in _manifest(out) if r["status"] == "done"] if (out / "irestore-manifest.jsonl").exists() else []
    return proc, stderr, stderr.count("slow-standin: started"), done, out


def test_ctrl_c_finishes_only_the_image_in_hand_not_the_read_ahead(tmp_path):
    proc, stderr, started, done, out = _interrupt_after_starts(tmp_path, starts=3, signals=1)
    assert proc.returncode == 130, stderr
    assert started == 3, stderr  # the images decoded ahead were not restored
    assert sorted(r["relative"] for r in done) == ["img00.png", "img01.png", "img02.png"]
    assert sorted(p.name for p in out.glob("*.png")) == ["img00.png", "img01.png", "img02.png"]
    assert "rerun the same command" in stderr


def test_a_second_ctrl_c_abandons_the_image_in_hand(tmp_path):
    proc, stderr, started, done, out = _interrupt_after_starts(tmp_path, starts=3, signals=2)
    assert proc.returncode == 130, stderr
    assert "aborted" in stderr and "Traceback" not in stderr, stderr
    assert started == 3
    assert sorted(r["relative"] for r in done) == ["img00.png", "img01.png"]  # the third was dropped
    assert sorted(p.name for p in out.iterdir()) == ["img00.png", "img01.png", "irestore-manifest.jsonl"]  # no partial file


def test_manifest_ends_a_torn_line_before_appending(tmp_path):
    from irestore.batch import Manifest

    path = tmp_path / "irestore-manifest.jsonl"
    path.write_text('{"input": "a.png", "status": "done"}\n{"input": "b.p')  # killed mid-append
    Manifest(path).append({"input": "c.png", "status": "done"})
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["input"] == "a.png" and json.loads(lines[2])["input"] == "c.png"
    assert lines[1] == '{"input": "b.p'


def test_an_image_no_step_changed_is_copied_byte_for_byte_not_re_encoded(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    PILImage.fromarray(_photo()).save(src / "photo.jpg", quality=80)
    PILImage.fromarray(_photo(seed=1)).save(src / "other.png")
    result = runner.invoke(app, ["restore", str(src), str(out), "--model", "identity", "--prompt", "a photo"])
    assert result.exit_code == 0, result.output
    records = {r["relative"]: r for r in _manifest(out)}
    for name in ("photo.jpg", "other.png"):  # a second JPEG compression would have cost quality for nothing
        assert (out / name).read_bytes() == (src / name).read_bytes() and records[name]["copied"] is True
    converted = runner.invoke(app, ["restore", str(src), str(tmp_path / "png"), "--model", "identity", "--format", "png"])
    assert converted.exit_code == 0, converted.output
    [record] = [r for r in _manifest(tmp_path / "png") if r["relative"] == "photo.jpg"]
    assert "copied" not in record and read_image(tmp_path / "png" / "photo.png").format == "PNG"
    assert np.array_equal(read_image(tmp_path / "png" / "photo.png").rgb, read_image(src / "photo.jpg").rgb)
