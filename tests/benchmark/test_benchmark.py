"""irestore benchmark: suites on tiny datasets in their real layouts, peer methods, reports, resume, CLI, browser."""

import csv
import io
import itertools
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from skimage import data
from typer.testing import CliRunner

from iqa_standins import write_standins
from irestore import degrade
from irestore.benchmark.report import REPORT_FILES, write_reports
from irestore.benchmark.runner import BenchmarkConfig, BenchmarkError, default_methods, run_benchmark
from irestore.cli.app import app
from irestore.io import Image, read_image, write_image
from irestore.restorers import RESTORERS, ArrayMethod, Card, Condition, MethodInfo, create_restorer, register_restorer

W, H = 64, 48
PHOTOS = ("astronaut", "coffee", "chelsea")


def _photo(name: str, size=(W, H)) -> np.ndarray:
    rgb = getattr(data, name)()
    return np.clip(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255, 0, 1)


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix == ".jpg" else "PNG"
    write_image(path, Image(rgb=rgb.astype(np.float32), format=fmt), format=fmt, jpeg_quality=98)


def _degraded(kind: str, clean: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return {
        "rain": lambda: degrade.rain(clean, rng, amount=0.3),
        "haze": lambda: degrade.haze(clean, rng, beta=0.12),
        "blur": lambda: degrade.motion(clean, rng, size=7),
        "lowlight": lambda: degrade.lowlight(clean, rng, brightness=0.1),
    }[kind]().image


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """CBSD68, Rain100L (PReNet layout), SOTS-outdoor, GoPro and LOL, three real photos each, in their layouts."""
    root = tmp_path_factory.mktemp("datasets")
    for i, name in enumerate(PHOTOS, start=1):
        clean = _photo(name)
        _save(root / "CBSD68" / "original_png" / f"{i:04d}.png", clean)
        _save(root / "Rain100L" / "rainy" / f"rain-{i}.png", _degraded("rain", clean, i))
        _save(root / "Rain100L" / f"norain-{i}.png", clean)
        _save(root / "SOTS" / "outdoor" / "hazy" / f"{i:04d}_0.8_0.2.jpg", _degraded("haze", clean, i))
        _save(root / "SOTS" / "outdoor" / "gt" / f"{i:04d}.png", clean)
        _save(root / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "blur" / f"{i:06d}.png", _degraded("blur", clean, i))
        _save(root / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "sharp" / f"{i:06d}.png", clean)
        _save(root / "LOLdataset" / "eval15" / "low" / f"{i}.png", _degraded("lowlight", clean, i))
        _save(root / "LOLdataset" / "eval15" / "high" / f"{i}.png", clean)
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        _save(folder / f"{name}.png", _photo(name))
    return folder


def _run(tmp_path, suite, methods, **kw):
    config = BenchmarkConfig(suite=suite, methods=tuple(methods.split(",")), out=tmp_path / kw.pop("out", "out"), **kw)
    return run_benchmark(config)


def _agg(result, task, method):
    return result.aggregate(task, method)


# --------------------------------------------------------------------------- suites


def test_all_in_one_suite_reads_the_real_layouts_with_the_promptir_protocol(datasets, tmp_path):
    result = _run(tmp_path, "all-in-one", "identity,nlm,dcp", data_root=datasets)
    assert [t.name for t in result.tasks] == ["cbsd68-s15", "cbsd68-s25", "cbsd68-s50", "rain100l", "sots-outdoor"]
    assert all(t.images == 3 for t in result.tasks)
    assert result.protocol.name == "promptir" and len(result.rows) == 5 * 3 * 3
    assert {r.status for r in result.rows if r.method == "identity"} == {"ok"}
    assert _agg(result, "cbsd68-s25", "nlm").psnr > _agg(result, "cbsd68-s25", "identity").psnr
    assert _agg(result, "sots-outdoor", "dcp").psnr > _agg(result, "sots-outdoor", "identity").psnr
    skipped = [r for r in result.rows if r.method == "nlm" and r.task == "rain100l"]
    assert {r.status for r in skipped} == {"skipped"} and "noise only" in skipped[0].error
    # heavier noise, lower PSNR for the noisy input itself
    psnrs = [_agg(result, f"cbsd68-s{s}", "identity").psnr for s in (15, 25, 50)]
    assert psnrs[0] > psnrs[1] > psnrs[2]
    assert {p.method for p in result.published} >= {"AirNet", "PromptIR", "InstructIR-3D", "CBM3D", "FFDNet"}


def test_test_noise_is_seeded_truncated_and_cropped_as_the_protocol_says(datasets, tmp_path):
    a = _run(tmp_path, "denoise", "identity", data_root=datasets, out="a")
    b = _run(tmp_path, "denoise", "identity", roots={"cbsd68": datasets / "CBSD68"}, out="b")
    first = Path("images/cbsd68-s25/_input/0001.png")
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()
    noisy = read_image(tmp_path / "a" / first).rgb * 255
    clean = read_image(tmp_path / "a" / "images/cbsd68-s25/_gt/0001.png").rgb * 255
    assert noisy.shape == (48, 64, 3)  # 64x48 is already a multiple of 16
    residual = (noisy - clean)[(clean > 60) & (clean < 195)]  # away from clipping
    assert residual.std() == pytest.approx(25, rel=0.15)
    assert residual.mean() == pytest.approx(-0.5, abs=0.35)  # astype(uint8) truncates: half a level darker
    assert [r.psnr for r in a.rows] == [r.psnr for r in b.rows]


def test_five_task_and_deblur_suites(datasets, tmp_path):
    result = _run(tmp_path, "all-in-one-5", "identity,gamma,wiener", data_root=datasets)
    assert [t.name for t in result.tasks] == ["rain100l", "sots-outdoor", "cbsd68-s25", "gopro", "lol"]
    assert _agg(result, "lol", "gamma").psnr > _agg(result, "lol", "identity").psnr
    wiener = [r for r in result.rows if r.method == "wiener" and r.task == "gopro"]
    assert {r.status for r in wiener} == {"skipped"} and "true blur kernel" in wiener[0].error
    deblur = _run(tmp_path, "deblur", "identity", roots={"gopro": datasets / "GOPRO_Large"}, out="deblur")
    assert [t.name for t in deblur.tasks] == ["gopro"] and _agg(deblur, "gopro", "identity").images == 3


def test_denoise_any_folder_and_missing_data_are_explained(photos, tmp_path):
    result = _run(tmp_path, f"denoise:{photos}", "identity,ffdnet")
    assert [t.name for t in result.tasks] == ["denoise-s15", "denoise-s25", "denoise-s50"]
    assert _agg(result, "denoise-s50", "ffdnet").psnr > _agg(result, "denoise-s50", "identity").psnr + 3
    with pytest.raises(BenchmarkError, match=r"(?s)Rain100L.*--rain100l DIR.*SOTS-outdoor"):
        _run(tmp_path, "all-in-one", "identity", roots={"cbsd68": photos}, out="missing")


def test_synthetic_suite_is_reproducible_and_peers_beat_the_input(photos, tmp_path):
    spec = "noise:25,haze,blur,lowlight,mix"
    result = _run(tmp_path, f"synthetic:{photos}", "identity,ffdnet,dcp,wiener,gamma", degradations=spec)
    assert [t.label for t in result.tasks] == spec.split(",")
    for task, method in (("noise-25", "ffdnet"), ("haze", "dcp"), ("blur", "wiener"), ("lowlight", "gamma")):
        assert _agg(result, task, method).psnr > _agg(result, task, "identity").psnr, (task, method)
    mixed = {r.method: r.status for r in result.rows if r.task == "mix"}
    assert mixed["identity"] == "ok" and {mixed[m] for m in ("ffdnet", "dcp", "wiener", "gamma")} == {"skipped"}
    again = _run(tmp_path, f"synthetic:{photos}", "identity", degradations=spec, out="again")
    assert [r.psnr for r in again.rows] == [r.psnr for r in result.rows if r.method == "identity"]
    other_seed = _run(tmp_path, f"synthetic:{photos}", "identity", degradations="haze", seed=1, out="seed1")
    assert [r.psnr for r in other_seed.rows] != [r.psnr for r in result.rows if r.method == "identity" and r.task == "haze"]


def test_pairs_suite_matches_by_relative_path_and_blind_peers_estimate_what_they_need(photos, tmp_path):
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    for i, name in enumerate(PHOTOS):
        clean = _photo(name)
        _save(gt / "set" / f"{name}.png", clean)
        _save(lq / "set" / f"{name}.jpg", degrade.noise(clean, np.random.default_rng(i), sigma=30).image)
    unknown = _run(tmp_path, f"pairs:{lq},{gt}", "identity,nlm,ffdnet,wiener", out="unknown")
    estimated = [r.details for r in unknown.rows if r.method == "ffdnet"]
    assert {d["sigma_from"] for d in estimated} == {"estimated"}
    assert all(20 < d["sigma"] < 40 for d in estimated), estimated
    assert _agg(unknown, "pairs", "ffdnet").psnr > _agg(unknown, "pairs", "identity").psnr + 3
    assert _agg(unknown, "pairs", "nlm").psnr > _agg(unknown, "pairs", "identity").psnr
    wiener = [r for r in unknown.rows if r.method == "wiener"]
    assert {r.status for r in wiener} == {"skipped"} and "is not blind" in wiener[0].error
    told = _run(tmp_path, f"pairs:{lq},{gt}", "identity,nlm,ffdnet,dcp", degradations="noise:30", out="told")
    assert told.tasks[0].label == "pairs σ=30"
    assert {(r.details["sigma"], r.details["sigma_from"]) for r in told.rows if r.method == "ffdnet"} == {(30.0, "stated")}
    assert _agg(told, "pairs", "nlm").psnr > _agg(told, "pairs", "identity").psnr
    assert {r.status for r in told.rows if r.method == "dcp"} == {"skipped"}  # the family is known: not haze
    assert sorted(r.key for r in told.rows if r.method == "identity") == sorted(f"set/{n}.jpg" for n in PHOTOS)
    with pytest.raises(BenchmarkError, match="only noise takes a value"):
        _run(tmp_path, f"pairs:{lq},{gt}", "identity", degradations="jpeg:10", out="bad")


def test_default_methods_are_identity_and_the_pool_members_for_the_suite():
    from irestore.benchmark.suites import build_suite

    assert default_methods(build_suite("all-in-one")) == ("identity", "ffdnet-color", "derain", "dehaze", "allinone-small")
    assert default_methods(build_suite("denoise")) == ("identity", "ffdnet-color", "allinone-small")
    assert default_methods(build_suite("deblur")) == ("identity", "pnp-deblur", "allinone-small")


def test_cli_without_methods_and_out_runs_the_defaults_into_irestore_benchmark(photos, tmp_path):
    command = [sys.executable, "-m", "irestore", "benchmark", "--suite", f"synthetic:{photos}",
               "--degradations", "noise:25", "--limit", "1", "--json"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "methods: identity,ffdnet-color,allinone-small (the default for this suite" in done.stderr
    report = json.loads((tmp_path / "irestore-benchmark" / "report.json").read_text())
    assert [m["name"] for m in report["methods"]] == ["identity", "ffdnet-color", "allinone-small"]
    assert {r["status"] for r in report["rows"]} == {"ok"}


def test_missing_datasets_are_named_once_each_with_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("IRESTORE_DATA", raising=False)
    result = CliRunner().invoke(_app(), ["benchmark", "--suite", "all-in-one", "--methods", "identity",
                                         "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.count("no cbsd68 folder given") == 1
    assert "CBSD68 σ=15, CBSD68 σ=25, CBSD68 σ=50: no cbsd68 folder given" in result.output
    assert "download: https://github.com/clausmichele/CBSD68-dataset" in result.output
    assert result.output.count("download: ") == 3  # CBSD68, Rain100L, SOTS
    assert "--sots-outdoor DIR, or --data-root DIR" in result.output


# --------------------------------------------------------------------------- failures


class _RefusesWideImages(ArrayMethod):
    card = Card("narrow-only", "fails on images wider than 70 px", any_input=True)

    def restore_array(self, image, condition):
        if image.shape[1] > 70:
            raise ValueError(f"image is {image.shape[1]} px wide")
        return image.copy()


def test_failures_are_reported_in_rows_and_do_not_stop_the_run(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    _save(folder / "a.png", _photo("astronaut"))
    _save(folder / "b.png", _photo("coffee", size=(80, 48)))
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with RESTORERS.scoped():
        register_restorer(MethodInfo("narrow-only", _RefusesWideImages.card, lambda spec, device, seed: _RefusesWideImages()))
        result = _run(tmp_path, f"synthetic:{folder}", "identity,narrow-only,irestore:/no/such/model@2", degradations="noise:20")
    by = {(r.key, r.method): r for r in result.rows}
    assert by[("a.png", "narrow-only")].status == "ok"
    assert by[("b.png", "narrow-only")].status == "failed" and "80 px wide" in by[("b.png", "narrow-only")].error
    assert by[("b.png", "identity")].status == "ok"
    assert {by[("c.png", m)].status for m in ("identity", "narrow-only")} == {"failed"}
    assert "c.png" in by[("c.png", "identity")].error
    lost = [r for r in result.rows if r.method.startswith("irestore:")]
    assert {r.status for r in lost} == {"failed"} and "could not load" in lost[0].error
    assert [m.load_error != "" for m in result.methods] == [False, False, True]
    write_reports(result, tmp_path / "out")  # reports still render


# --------------------------------------------------------------------------- reports, resume


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.images, self.svgs = [], 0, 0

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "img", "br", "circle", "line", "rect", "polyline", "!doctype"):
            self.stack.append(tag)
        self.images += tag == "img" and dict(attrs)["src"].startswith("data:image/png;base64,")
        self.svgs += tag == "svg"

    def handle_endtag(self, tag):
        if tag in ("circle", "line", "rect", "polyline"):
            return
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_report_files_exist_and_parse(photos, tmp_path):
    result = _run(tmp_path, f"synthetic:{photos}", "identity,ffdnet", degradations="noise:25,haze")
    paths = write_reports(result, tmp_path / "out")
    assert sorted(paths) == sorted(REPORT_FILES) and all(p.is_file() for p in paths.values())
    report = json.loads(paths["report.json"].read_text())
    assert report["protocol"]["fingerprint"] == result.protocol.fingerprint
    assert len(report["rows"]) == 12 and {"s_per_mp", "peak_mb", "psnr", "ssim", "lpips"} <= set(report["rows"][0])
    assert report["metric_status"]["lpips"].startswith("LPIPS needs")
    rows = list(csv.DictReader(paths["report.csv"].open()))
    assert len(rows) == 12 and float(rows[0]["psnr"]) > 0
    md = paths["report.md"].read_text()
    assert "| Method | noise:25 | haze | Average | s/MP | peak MB |" in md and result.protocol.fingerprint in md
    assert "LPIPS: unavailable" in md
    checker = _Checker()
    checker.feed(paths["report.html"].read_text())
    # noise: thumbnail, input (identity's score), ffdnet, ground truth; haze: the same without ffdnet (skipped)
    assert checker.stack == [] and checker.images == 4 + 3 and checker.svgs == 2


def test_resume_reuses_finished_results_and_refuses_another_setup(photos, tmp_path):
    first = _run(tmp_path, f"synthetic:{photos}", "identity,nlm", degradations="noise:25")
    rows_file = tmp_path / "out" / "rows.jsonl"
    lines = rows_file.read_text().splitlines()
    rows_file.write_text("\n".join(lines[:4]) + '\n{"task": "noise-25", "ke')  # killed mid-write
    resumed = _run(tmp_path, f"synthetic:{photos}", "identity,nlm,dcp", degradations="noise:25", resume=True)
    seconds = {(r.key, r.method): r.seconds for r in first.rows}
    again = {(r.key, r.method): r.seconds for r in resumed.rows if r.method != "dcp"}
    reused = [k for k in again if again[k] == seconds[k]]
    assert len(reused) == 4  # the four rows that were on disk; the rest were run again
    assert len(resumed.rows) == 9 and {r.status for r in resumed.rows if r.method == "dcp"} == {"skipped"}
    with pytest.raises(BenchmarkError, match="protocol"):
        _run(tmp_path, f"synthetic:{photos}", "identity", degradations="noise:25", protocol="y-bt601", resume=True)


def test_lpips_and_fid_columns_with_standin_weights_and_require(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(BenchmarkError, match="alexnet-owt-7be5be79.pth"):
        _run(tmp_path, f"synthetic:{photos}", "identity", degradations="haze", require=("lpips",))
    write_standins(tmp_path / "torch")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = _run(tmp_path, f"synthetic:{photos}", "identity,dcp", degradations="haze", require=("lpips", "fid"))
    assert result.metric_status == {"lpips": "", "fid": ""}
    agg = _agg(result, "haze", "dcp")
    assert agg.lpips is not None and agg.lpips >= 0 and agg.fid is not None
    assert "LPIPS: computed" in (write_reports(result, tmp_path / "out")["report.md"]).read_text()


# --------------------------------------------------------------------------- methods




@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
    from irestore.diffusion.sde import SDEConfig
    from irestore.registry import create_network
    from network_helpers import _randomise

    net = _randomise(create_network("erunet-tiny", text_dim=384), seed=3)
    info = CheckpointInfo(network=net.config, sde=SDEConfig(), text_encoder="minilm", text_dim=384, name="tiny", default_steps=2)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", net, info)


def _app() -> typer.Typer:
    return app


def test_cli_runs_irestore_at_two_step_counts_and_prints_json(photos, tiny_checkpoint, tmp_path):
    out = tmp_path / "cli"
    methods = f"identity,irestore:{tiny_checkpoint}@1,irestore:{tiny_checkpoint}@2"
    args = ["benchmark", "--suite", f"synthetic:{photos}", "--degradations", "noise:25,haze", "--methods", methods,
            "--out", str(out), "--limit", "2", "--json"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["rows"]) == 2 * 2 * 3 and {r["status"] for r in report["rows"]} == {"ok"}
    assert [m["settings"].get("steps") for m in report["methods"]] == [None, 1, 2]
    html = (out / "report.html").read_text()
    assert "<polyline" in html and "PSNR vs sampling steps" in html
    assert "protocol irestore" in result.stderr


def test_cli_usage_errors_exit_2(photos, tmp_path):
    runner = CliRunner()
    bad_suite = runner.invoke(_app(), ["benchmark", "--suite", "nope", "--methods", "identity", "--out", str(tmp_path)])
    assert bad_suite.exit_code == 2 and "unknown suite" in bad_suite.output
    bad_method = runner.invoke(_app(), ["benchmark", "--suite", f"synthetic:{photos}", "--methods", "identity,magic",
                                        "--out", str(tmp_path)])
    assert bad_method.exit_code == 2 and "unknown method 'magic'" in bad_method.output


def test_more_steps_than_the_sde_has_is_a_usage_error_before_any_row(photos, tiny_checkpoint, tmp_path):
    out = tmp_path / "steps"
    args = ["benchmark", "--suite", f"synthetic:{photos}", "--degradations", "haze", "--out", str(out), "--limit", "1"]
    assert CliRunner().invoke(_app(), [*args, "--methods", "identity"]).exit_code == 0
    earlier = (out / "rows.jsonl").read_text()
    result = CliRunner().invoke(_app(), [*args, "--methods", f"identity,irestore:{tiny_checkpoint}@101"])
    assert result.exit_code == 2, result.output
    assert "101 steps asked, but the SDE of" in result.output and "has T = 100 steps" in result.output
    assert (out / "rows.jsonl").read_text() == earlier  # refused before the earlier results were cleared


# --------------------------------------------------------------------------- browser


def test_html_report_renders_in_headless_chromium_without_console_errors(photos, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); the HTML was not rendered")
    result = _run(tmp_path, f"synthetic:{photos}", "identity,ffdnet,dcp", degradations="noise:25,haze")
    page = write_reports(result, tmp_path / "out")["report.html"]
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[:2] == (2400, 1200) and pixels.std() > 20


def test_scatter_labels_stay_inside_the_plot_and_do_not_overlap():
    import re

    from irestore.benchmark.svgchart import BOTTOM, HEIGHT, TOP, Point, scatter_chart

    points = [Point(100 + i, 5.0 + 0.01 * i, f"irestore:model@{i}", "#000") for i in range(4)]
    svg = scatter_chart([*points, Point(0.01, 30, "identity", "#111")], "t", "x", "y")
    labels = re.findall(r'<text x="[^"]+" y="([^"]+)" text-anchor="(?:start|end)" fill="[^"]+">([^<]+)<', svg)
    labels = [(float(y), text) for y, text in labels]
    assert len(labels) == 5
    assert all(TOP <= y <= HEIGHT - BOTTOM for y, _ in labels)
    stacked = sorted(y for y, text in labels if text.startswith("irestore"))
    assert all(b - a >= 12 for a, b in itertools.pairwise(stacked))


@pytest.mark.parametrize("spec,expected", [
    ("irestore:allinone-small", ("allinone-small", None, None, False)),
    ("irestore:runs/x/best@4", ("runs/x/best", 4, None, False)),
    ("irestore:m@2:ddim", ("m", 2, "ddim", False)),
    ("irestore:m@2:blind", ("m", 2, None, True)),
    ("irestore:m@8:posterior:blind", ("m", 8, "posterior", True)),
])
def test_irestore_method_specs(spec, expected):
    from irestore.restorers.diffusion import parse_irestore_spec

    assert parse_irestore_spec(spec) == expected


@pytest.mark.parametrize("spec", ["irestore:", "irestore:m@0", "irestore:m@x", "irestore:m@2:ddim:posterior:blind"])
def test_bad_irestore_method_specs_are_refused(spec):
    from irestore.restorers.diffusion import parse_irestore_spec

    with pytest.raises(ValueError, match="bad method"):
        parse_irestore_spec(spec)


def test_a_blind_irestore_method_passes_no_prompt(tiny_checkpoint, photos):
    seen = {}
    blind, told = create_restorer(f"irestore:{tiny_checkpoint}@1:blind"), create_restorer(f"irestore:{tiny_checkpoint}@1")

    def recording(name, encode):  # the real encoder, noting the text it is given
        def record(text):
            seen[name] = text
            return encode(text)
        return record

    for name, method in (("blind", blind), ("told", told)):
        method.restorer.text_encoder.encode = recording(name, method.restorer.text_encoder.encode)
    image = torch.full((1, 3, 32, 32), 0.5)
    condition = Condition(("noise",), prompt="remove the noise")
    blind.restore(image, condition)
    told.restore(image, condition)
    assert seen == {"blind": "", "told": "remove the noise"}
    assert blind.settings()["prompt"] == "none (blind)"


# --------------------------------------------------------------------------- mixtures and plans


def test_the_mixtures_suite_has_seeded_two_and_three_degradation_combinations(photos):
    from irestore.benchmark.suites import build_suite, find_samples, prepare
    from irestore.evaluate.metrics import get_protocol

    suite = build_suite(f"mixtures:{photos}")
    kinds = [degrade.parse_spec(t.degradation)[0].kinds for t in suite.tasks]
    assert len(suite.tasks) >= 12 and {t.family for t in suite.tasks} == {"mix"}
    assert {len(k) for k in kinds} == {2, 3} and ("haze", "noise") in kinds and ("haze", "rain", "noise") in kinds
    sample = find_samples(suite)[suite.tasks[0].name][0]
    first, again = (prepare(sample, get_protocol("irestore"), seed=0) for _ in range(2))
    assert np.array_equal(first.lq, again.lq)  # seeded: the same inputs on every run
    assert [s["type"] for s in first.degradation.params["steps"]] == list(kinds[0])


def test_the_oracle_plan_bounds_every_plan_and_names_the_best_fixed_order(tmp_path, photos):
    from irestore.benchmark.runner import plan_comparison

    result = _run(tmp_path, f"synthetic:{photos}", "identity,plan:fixed,plan:auto,plan:oracle",
                  degradations="mix:lowlight+noise:moderate", limit=2)
    assert {r.status for r in result.rows} == {"ok"}, [r.error for r in result.rows]
    oracle = [r for r in result.rows if r.method == "plan:oracle"]
    for row in oracle:
        assert len(row.details["orders"]) == 12  # 2 orders x (2 noise members x 3 low-light members)
        others = [r.psnr for r in result.rows if r.key == row.key and r.method != "plan:oracle"]
        assert row.psnr >= max(others) - 1e-6
        assert abs(row.psnr - max(row.details["orders"].values())) < 1e-3
    (entry,) = plan_comparison(result)
    assert entry["best_fixed_order"] in oracle[0].details["orders"]
    # the per-order PSNRs are rounded to 4 decimals in the details
    assert entry["camera_order_psnr"] <= entry["best_fixed_psnr"] + 1e-4 <= entry["methods"]["plan:oracle"]["psnr"] + 2e-4
    assert entry["methods"]["plan:auto"]["gap_to_oracle"] >= -1e-6
    assert [r for r in result.rows if r.method == "plan:auto"][0].details["plan_details"]["mode"] == "auto"
    assert "Plans against the oracle" in write_reports(result, tmp_path / "out")["report.md"].read_text()


@pytest.mark.parametrize("width", [80, 200])
def test_terminal_table_never_breaks_a_number_across_lines(photos, tmp_path, width):
    import re

    from rich.console import Console

    from irestore.benchmark.report import method_rows, render_table

    result = _run(tmp_path, f"synthetic:{photos}", "identity,ffdnet,dcp,gamma", degradations="noise:25,haze,lowlight,blur")
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    render_table(result, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    cells = [cell for row in method_rows(result) for cell in row[1:] if re.match(r"\d", cell)]
    assert cells and all(cell in text for cell in cells)  # each whole on one line
