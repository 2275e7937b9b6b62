"""The report `irestore restore` writes: numbers checked against the manifest and against an
independent PSNR/SSIM of the written files, merging of resumed runs and shards, the previews,
and the HTML page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from skimage import data
from skimage.metrics import structural_similarity

from irestore.batch import report as batch_report
from irestore.batch import report_html as batch_report_html
from irestore.batch.quality import BRISQUE_HINT, QualityMeter
from irestore.batch.report import add_record, build_report, crop_window, read_records, write_previews, write_report
from paths import TEST_DATA

PHOTO = TEST_DATA / "aitzgorri_crop.png"


def _photos() -> dict[str, np.ndarray]:
    """Three real photos (8-bit RGB)."""
    return {"aitzgorri.png": np.asarray(PILImage.open(PHOTO).convert("RGB")),
            "coffee.png": data.coffee(), "sub/chelsea.png": data.chelsea()[::2, ::2]}


def _dark_folders(root: Path) -> tuple[Path, Path]:
    """Under-exposed copies (input) and the photos themselves (reference), so gamma restores something."""
    src, ref = root / "in", root / "ref"
    for name, rgb in _photos().items():
        for folder, image in ((src, (rgb.astype(np.float32) * 0.25).round().astype(np.uint8)), (ref, rgb)):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(image).save(folder / name)
    return src, ref


def _u8(path: Path) -> np.ndarray:
    return np.asarray(PILImage.open(path).convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(b, a, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "irestore.cli", *map(str, args)]


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    src, ref = _dark_folders(root)
    out = root / "out"
    run = subprocess.run(_cli("restore", src, out, "--model", "gamma", "--reference", ref), capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert "irestore-report.html" in run.stderr
    return src, ref, out


def test_report_numbers_equal_the_manifest_and_an_independent_psnr_of_the_written_files(restored):
    src, ref, out = restored
    report = json.loads((out / "irestore-report.json").read_text())
    manifest = {r["relative"]: r for r in map(json.loads, (out / "irestore-manifest.jsonl").read_text().splitlines())}
    rows = {r["relative"]: r for r in report["images"]}
    assert set(rows) == set(manifest) == set(_photos())
    for name, row in rows.items():
        for key in ("psnr", "ssim", "psnr_input", "ssim_input", "brisque", "brisque_input", "plan" if "plan" in row else "model"):
            assert row[key] == manifest[name][key], (name, key)
        written, truth, given = _u8(out / name), _u8(ref / name), _u8(src / name)
        assert row["psnr"] == pytest.approx(_psnr(written, truth), abs=1e-3)
        assert row["psnr_input"] == pytest.approx(_psnr(given, truth), abs=1e-3)
        assert row["ssim"] == pytest.approx(_ssim(written, truth), abs=1e-3)
        assert row["gain"] == pytest.approx(row["psnr"] - row["psnr_input"], abs=1e-3) and row["gain"] > 3  # gamma brightens
        assert 0 < row["brisque"] < 100 and row["brisque"] != row["brisque_input"]
    summary = report["summary"]
    assert summary["mean_psnr"] == pytest.approx(np.mean([_psnr(_u8(out / n), _u8(ref / n)) for n in rows]), abs=1e-3)
    assert summary["done"] == 3 and summary["failed"] == 0 and summary["improved"] == 3
    assert report["protocol"]["name"] == "irestore" and report["protocol"]["fingerprint"] in (out / "irestore-report.md").read_text()
    assert summary["metrics"]["brisque"] == "computed" and summary["metrics"]["lpips"].startswith("unavailable: LPIPS needs")
    text = (out / "irestore-report.md").read_text()
    assert all(name in text for name in rows) and f"{summary['mean_psnr']:.2f}" in text


def test_previews_show_the_input_and_the_output_at_native_resolution(restored):
    src, _, out = restored
    row = {r["relative"]: r for r in json.loads((out / "irestore-report.json").read_text())["images"]}["coffee.png"]
    before, after = (cv2.imread(str(out / row["previews"][k]))[..., ::-1] for k in ("before", "after"))
    given, written = _u8(src / "coffee.png"), _u8(out / "coffee.png")
    assert max(before.shape[:2]) == batch_report.THUMB_SIDE and before.shape == after.shape
    small = cv2.resize(written, before.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(after.astype(float) - small).mean() < 4 and np.abs(before.astype(float) - small).mean() > 40  # dark vs bright
    crop = cv2.imread(str(out / row["previews"]["after_crop"]))[..., ::-1]
    assert crop.shape[:2] == (batch_report.CROP_SIDE, batch_report.CROP_SIDE)
    # the crop is an unscaled window of the output: it matches the output somewhere exactly (up to JPEG)
    match = cv2.matchTemplate(written.astype(np.float32), crop.astype(np.float32), cv2.TM_SQDIFF_NORMED)
    assert match.min() < 0.01
    assert given.shape == written.shape


def test_the_crop_is_where_the_restoration_changed_most():
    before = np.zeros((200, 300, 3), np.float32)
    after = before.copy()
    after[120:150, 40:70] = 0.5
    top, left, side = crop_window(before, after, side=64)
    assert side == 64 and top <= 120 and top + 64 >= 150 and left <= 40 and left + 64 >= 70
    assert crop_window(before, before, side=64) == (68, 118, 64)  # nothing changed: the centre


def _record(name: str, status: str, output: Path, **fields) -> dict:
    return {"relative": name, "input": f"/in/{name}", "output": str(output), "status": status, **fields}


def test_rows_merge_a_resumed_run_and_shards_and_skip_torn_lines(tmp_path):
    done = tmp_path / "a.png"
    done.write_bytes(b"x")
    first = [_record("a.png", "done", done, psnr=30.0), _record("b.png", "failed", tmp_path / "b.png", error="unreadable"),
             _record("c.png", "done", tmp_path / "c.png", psnr=20.0)]
    resumed = [_record("a.png", "skipped", done), _record("b.png", "done", tmp_path / "b.png", psnr=25.0),
               _record("c.png", "done", tmp_path / "c.png", psnr=21.0)]
    shard = [_record("d.png", "done", tmp_path / "d.png", psnr=27.0), _record("a.png", "failed", done, error="later failure")]
    (tmp_path / "irestore-manifest.jsonl").write_text("\n".join(map(json.dumps, first + resumed)) + '\n{"relative": "e.p')
    (tmp_path / "irestore-manifest.shard-1.jsonl").write_text("\n".join(map(json.dumps, shard)) + "\n")
    rows = read_records(tmp_path)
    assert sorted(rows) == ["a.png", "b.png", "c.png", "d.png"]
    assert rows["a.png"]["status"] == "done" and rows["a.png"]["psnr"] == 30.0  # a failed retry keeps the finished output
    assert rows["b.png"]["status"] == "done" and rows["c.png"]["psnr"] == 21.0  # the last attempt wins
    add_record(rows, _record("c.png", "failed", tmp_path / "c.png", error="gone"))  # c's output does not exist
    assert rows["c.png"]["status"] == "failed"
    summary = build_report(rows, {})["summary"]
    assert summary["done"] == 3 and summary["failed"] == 1 and summary["mean_psnr"] == pytest.approx((30 + 25 + 27) / 3)


def test_a_missing_brisque_model_is_named_once_with_how_to_supply_it(monkeypatch):
    import irestore.evaluate.brisque
    from irestore.weights import MissingWeightsError

    def missing(name, **kwargs):
        raise MissingWeightsError(f"{name}: not installed")

    monkeypatch.setattr(irestore.evaluate.brisque, "resolve_weights", missing)
    meter = QualityMeter(lpips=False)
    rgb = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    assert meter.measure(rgb, rgb, None) == {}
    assert "brisque-live: not installed" in meter.status["brisque"] and BRISQUE_HINT in meter.status["brisque"]


def test_the_page_cannot_be_broken_by_a_file_name_or_prompt(tmp_path):
    name = "x</script><script>alert(1)</script>.png"
    rows = {name: {"relative": name, "output": str(tmp_path / "x.png"), "status": "done", "prompt": "<b>bold</b>", "psnr": 1.0}}
    page = batch_report_html.render_page(build_report(rows, {}), tmp_path)
    assert page.count("</script>") == 2 and "<script>alert" not in page
    payload = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(payload)["images"][0]["relative"] == name


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); the HTML was not rendered")
    return browser


def _render(browser: str, page: Path, tmp_path: Path) -> tuple[list[str], str, np.ndarray]:
    """Console messages, the DOM after the page's script ran, and a phone-sized screenshot."""
    flags = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
             "--allow-file-access-from-files"]
    shot = tmp_path / "shot.png"
    run = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=390,1400", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    console = [line for line in run.stderr.splitlines() + dom.stderr.splitlines() if ":CONSOLE" in line]
    return console, dom.stdout, cv2.imread(str(shot))


def test_the_page_loads_in_chromium_without_errors_and_shows_every_image(restored, tmp_path):
    browser = _chromium()
    _, _, out = restored
    console, dom, shot = _render(browser, out / "irestore-report.html", tmp_path)
    assert console == [], console
    assert dom.count('<article class="card">') == 3 and dom.count('src="data:image/jpeg;base64,') == 12
    assert "aitzgorri.png" in dom and "sub/chelsea.png" in dom
    assert shot is not None and shot.shape[:2] == (1400, 390) and shot.std() > 20


def test_a_large_batch_links_its_previews_and_shows_one_page(tmp_path):
    """10 000 rows: previews are linked, not embedded, and only one page of cards is built."""
    browser = _chromium()
    rgb = (np.asarray(PILImage.open(PHOTO).convert("RGB")) / 255).astype(np.float32)
    previews = write_previews(tmp_path, "one.png", rgb * 0.3, rgb)
    rows = {f"img{i:05d}.png": {"relative": f"img{i:05d}.png", "output": str(tmp_path / "x"), "status": "done",
                                "labels": ["lowlight"] if i % 2 else ["noise"], "previews": previews,
                                "psnr_input": 10.0, "psnr": 10.0 + i % 7}
            for i in range(10_000)}
    page = write_report(tmp_path, build_report(rows, {}))["html"]
    assert page.stat().st_size < 12e6 and "base64" not in page.read_text()
    console, dom, _ = _render(browser, page, tmp_path)
    assert console == [], console
    assert dom.count('<article class="card">') == batch_report_html.PAGE_SIZE and "page 1 of 417" in dom
    assert dom.count(f'src="{previews["after"]}"') == batch_report_html.PAGE_SIZE


def test_the_largest_page_with_embedded_previews_stays_a_few_megabytes(tmp_path):
    """Noisy inputs are the worst case for JPEG; beyond INLINE_LIMIT images previews are linked instead."""
    rng = np.random.default_rng(0)
    photo = data.astronaut().astype(np.float32) / 255
    rows = {}
    for i in range(batch_report_html.INLINE_LIMIT):
        top, left = rng.integers(0, 200, 2)
        clean = photo[top:top + 300, left:left + 300]
        noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
        name = f"img{i:03d}.png"
        rows[name] = {"relative": name, "output": "x", "status": "done", "previews": write_previews(tmp_path, name, noisy, clean)}
    page = write_report(tmp_path, build_report(rows, {}))["html"]
    assert page.read_text().count("data:image/jpeg;base64,") == 4 * len(rows)
    assert page.stat().st_size < 4e6, page.stat().st_size


def test_scores_are_those_of_the_file_written_even_when_it_is_a_jpeg(tmp_path):
    from typer.testing import CliRunner

    from irestore.cli.app import app

    src, ref = _dark_folders(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["restore", str(src / "coffee.png"), str(out), "--model", "gamma", "--reference", str(ref),
                                      "--format", "jpeg", "--jpeg-quality", "30"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "irestore-manifest.jsonl").read_text().splitlines()[-1])
    written = _u8(out / "coffee.jpg")
    assert record["psnr"] == pytest.approx(_psnr(written, _u8(ref / "coffee.png")), abs=1e-3)
    assert json.loads((out / "irestore-report.json").read_text())["images"][0]["psnr"] == record["psnr"]


def test_a_reference_name_with_glob_characters_is_found_literally(tmp_path):
    from irestore.batch import plan_jobs

    (tmp_path / "in").mkdir()
    (tmp_path / "ref").mkdir()
    PILImage.fromarray(data.coffee()[:64, :64]).save(tmp_path / "in" / "shot[1].png")
    for name in ("shot1.jpg", "shot[1].jpg"):  # the first is what an unescaped "shot[1].*" would match
        PILImage.fromarray(data.coffee()[:64, :64]).save(tmp_path / "ref" / name)
    [job] = plan_jobs(tmp_path / "in", tmp_path / "out", reference_dir=tmp_path / "ref")
    assert job.reference == tmp_path / "ref" / "shot[1].jpg"
