"""Datasets: every registered layout read from a tiny fixture written in its real folder layout,
pairs:/folder: specs, verification, prompts, determinism, held-out splits and DataLoader workers."""

from __future__ import annotations

import csv
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from irestore.data import LAYOUTS, DatasetError, build_dataset, find_pairs, list_layouts, verify_layout
from irestore.degrade import gaussian_blur
from irestore.io import ImageError
from irestore.labels import LABEL_INDEX, LABELS

SIZE = (20, 24)  # height, width of fixture images


def write(path: Path, value: int, size: tuple[int, int] = SIZE) -> Path:
    """A flat RGB image whose grey level encodes which file it is (lossless enough for JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*size, 3), value, np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def write_noise(path: Path, rng: np.random.Generator, size: tuple[int, int] = (48, 56)) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def pair(lq: Path, gt: Path, ident: int, size: tuple[int, int] = SIZE, lq_size: tuple[int, int] | None = None) -> None:
    """GT grey level 10*ident, its LQ 10*ident + 5: a test can tell whether files were matched right."""
    write(gt, 10 * ident, size)
    write(lq, 10 * ident + 5, lq_size or size)


# ---------------------------------------------------------------------------- fixtures per layout
# Each returns (root to pass, split, number of samples in that split).


def gopro(tmp: Path):
    base = tmp / "GOPRO_Large"
    for split, sequences in (("train", ["GOPR0372_07_00", "GOPR0374_11_00"]), ("test", ["GOPR0384_11_00"])):
        for s, sequence in enumerate(sequences):
            for i in range(2):
                folder = base / split / sequence
                pair(folder / "blur" / f"{i:06d}.png", folder / "sharp" / f"{i:06d}.png", 3 * s + i + 1)
                write(folder / "blur_gamma" / f"{i:06d}.png", 250)  # must be ignored
    return tmp, "train", 4  # the parent of GOPRO_Large


def rain100l(tmp: Path):  # PReNet: rainy/rain-N.png beside norain-N.png
    base = tmp / "Rain100L"
    for n in (1, 2, 3):
        pair(base / "rainy" / f"rain-{n:03d}.png", base / f"norain-{n:03d}.png", n)
    return base, "test", 3


def rain100h(tmp: Path):  # input/target with rain-N / norain-N names
    base = tmp / "Rain100H"
    for n in (1, 2, 10):
        pair(base / "input" / f"rain-{n}.png", base / "target" / f"norain-{n}.png", n)
    return base, "test", 3


def sots_outdoor(tmp: Path):
    base = tmp / "SOTS" / "outdoor"
    for n, name in ((1, "0001_0.8_0.2"), (2, "0002_0.9_0.16")):
        pair(base / "hazy" / f"{name}.jpg", base / "gt" / f"{n:04d}.png", n)
    return tmp / "SOTS", "test", 2


def sots_indoor(tmp: Path):
    base = tmp / "indoor"
    for gt_id, n in ((1400, 1), (1401, 2)):
        write(base / "clear" / f"{gt_id}.png", 10 * n)
        for k in (1, 2, 3):
            write(base / "hazy" / f"{gt_id}_{k}.png", 10 * n + 5)
    return base, "test", 6


def reside6k(tmp: Path):
    base = tmp / "RESIDE-6K"
    for split, names in (("train", ["1.png", "2.png", "3.png"]), ("test", ["0001_0.8_0.2.png"])):
        for n, name in enumerate(names, 1):
            pair(base / split / "hazy" / name, base / split / "GT" / name, n)
    return base, "train", 3


def bsd400_wed(tmp: Path):
    base = tmp / "denoise"
    for n in range(3):
        write(base / "BSD400" / f"{n}.jpg", 40 * n + 20)
    write(base / "WED" / "00001.bmp", 200)
    return base, "train", 4


def cbsd68(tmp: Path):
    base = tmp / "CBSD68"
    for n in range(2):
        write(base / "original_png" / f"{n:04d}.png", 60 * n + 30)
        write(base / "noisy25" / f"{n:04d}.png", 250)  # noisy copies are not clean images
    return base, "test", 2


def div2k(tmp: Path):
    base = tmp / "DIV2K"
    write(base / "DIV2K_train_HR" / "0001.png", 50)
    write(base / "DIV2K_train_HR" / "0002.png", 90)
    write(base / "DIV2K_valid_HR" / "0801.png", 120)
    return tmp, "train", 2


def div2k_lr(scale: int) -> Callable[[Path], tuple[Path, str, int]]:
    def make(tmp: Path):
        base = tmp / "DIV2K"
        size = (8 * scale, 6 * scale)
        for n, name in ((1, "0801"), (2, "0802")):
            pair(base / "DIV2K_valid_LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png",
                 base / "DIV2K_valid_HR" / f"{name}.png", n, size=size, lq_size=(8, 6))
        return base, "val", 2
    return make


def lol(tmp: Path):
    base = tmp / "LOLdataset"
    for split, names in (("our485", ["2", "5"]), ("eval15", ["1", "22", "23"])):
        for n, name in enumerate(names, 1):
            pair(base / split / "low" / f"{name}.png", base / split / "high" / f"{name}.png", n)
    return base, "test", 3


FIXTURES = {
    "gopro": gopro, "rain100l": rain100l, "rain100h": rain100h, "sots-outdoor": sots_outdoor,
    "sots-indoor": sots_indoor, "reside6k": reside6k, "bsd400-wed": bsd400_wed, "cbsd68": cbsd68,
    "div2k": div2k, "div2k-x2": div2k_lr(2), "div2k-x3": div2k_lr(3), "div2k-x4": div2k_lr(4), "lol": lol,
}


def test_every_layout_has_a_fixture():
    assert set(FIXTURES) == set(LAYOUTS)
    assert [lay.name for lay in list_layouts()] == list(LAYOUTS)


def assert_item_contract(item: dict, crop: int) -> None:
    for name in ("lq", "gt"):
        assert item[name].dtype == torch.float32 and item[name].shape == (3, crop, crop)
        assert 0.0 <= item[name].min() and item[name].max() <= 1.0
    for name in ("labels", "severity", "severity_mask"):
        assert item[name].dtype == torch.float32 and item[name].shape == (len(LABELS),)
    assert isinstance(item["prompt"], str) and isinstance(item["key"], str)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_layout_loads_its_fixture(name, tmp_path):
    root, split, count = FIXTURES[name](tmp_path)
    layout = LAYOUTS[name]
    pairs = find_pairs(name, root, split)
    assert len(pairs) == count
    assert [p.key for p in pairs] == sorted(p.key for p in pairs)
    assert all((p.lq is None) == layout.clean_only for p in pairs)
    dataset = build_dataset(f"{name}:{root}", split=split, crop=8, seed=1)
    assert len(dataset) == count
    for i in range(count):
        item = dataset[i]
        assert_item_contract(item, 8)
        if layout.clean_only:  # a synthetic degradation: its labels and severities are known
            assert item["labels"][LABEL_INDEX["clean"]] == 0 and item["labels"].sum() >= 1
            assert item["prompt"]
            continue
        for label in LABELS:
            assert item["labels"][LABEL_INDEX[label]] == (label in layout.labels)
        assert item["severity_mask"].sum() == 0  # the severity of a real dataset is unknown
        gt_level, lq_level = item["gt"].mean().item() * 255, item["lq"].mean().item() * 255
        assert lq_level == pytest.approx(gt_level + 5, abs=1.0), "LQ matched to the wrong GT"
        assert item["prompt"]


def test_gopro_keys_ignore_blur_gamma_and_splits_stay_apart(tmp_path):
    gopro(tmp_path)
    train, test = find_pairs("gopro", tmp_path, "train"), find_pairs("gopro", tmp_path / "GOPRO_Large", "test")
    assert [p.key for p in test] == ["GOPR0384_11_00/blur/000000.png", "GOPR0384_11_00/blur/000001.png"]
    assert all("/blur/" in str(p.lq) and "/sharp/" in str(p.gt) for p in train + test)
    everything = find_pairs("gopro", tmp_path, "all")
    assert len(everything) == 6 and everything[0].key.startswith("test/")


@pytest.mark.parametrize("variant", ["flat", "jorder", "test-level"])
def test_rain_layout_variants(variant, tmp_path):
    base = tmp_path / "Rain100L"
    for n in (1, 2):
        if variant == "flat":  # rain-N.png and norain-N.png in one folder
            pair(base / f"rain-{n}.png", base / f"norain-{n}.png", n)
        elif variant == "jorder":  # rain/X2/norain-Nx2.png and norain/norain-N.png
            pair(base / "rain" / "X2" / f"norain-{n}x2.png", base / "norain" / f"norain-{n}.png", n)
        else:
            pair(base / "test" / "input" / f"{n}.png", base / "test" / "target" / f"{n}.png", n)
    pairs = find_pairs("rain100l", tmp_path, "test")
    assert len(pairs) == 2
    for p in pairs:
        assert cv2.imread(str(p.lq))[0, 0, 0] == cv2.imread(str(p.gt))[0, 0, 0] + 5


def test_sots_indoor_shares_one_clear_image_among_hazy_versions(tmp_path):
    root, _, _ = sots_indoor(tmp_path)
    pairs = find_pairs("sots-indoor", root)
    assert {p.gt.name for p in pairs} == {"1400.png", "1401.png"}
    assert [p.gt.name for p in pairs if p.lq.name.startswith("1401_")] == ["1401.png"] * 3


def test_div2k_lr_is_upsampled_to_the_hr_size(tmp_path):
    root, split, _ = div2k_lr(4)(tmp_path)
    item = build_dataset("div2k-x4", root=root, split=split, crop=None)[0]
    assert item["lq"].shape == item["gt"].shape == (3, 32, 24)
    assert item["labels"][LABEL_INDEX["lowres"]] == 1


# ---------------------------------------------------------------------------- specs


def test_pairs_spec_matches_by_relative_path_across_extensions(tmp_path):
    lq, gt = tmp_path / "lq", tmp_path / "gt"
    pair(lq / "a" / "x.jpg", gt / "a" / "x.png", 1)
    pair(lq / "b" / "x.jpg", gt / "b" / "x.png", 2)  # same name in another folder: another photo
    write(lq / "orphan.png", 3)
    write(gt / "lonely.png", 4)
    pairs = find_pairs(f"pairs:{lq},{gt}", split="all")
    assert [(p.key, p.gt.relative_to(gt).as_posix()) for p in pairs] == [("a/x.jpg", "a/x.png"),
                                                                          ("b/x.jpg", "b/x.png")]
    report = verify_layout(f"pairs:{lq},{gt}")
    assert not report.complete
    assert report.splits[0].unmatched_lq == [str(lq / "orphan.png")]
    assert report.splits[0].unmatched_gt == [str(gt / "lonely.png")]
    item = build_dataset(f"pairs:{lq},{gt}", split="all", crop=8)[1]
    assert item["labels"].sum() == 0 and item["severity_mask"].sum() == 0  # unknown degradation
    assert item["lq"].mean().item() * 255 == pytest.approx(25, abs=1)


def test_folder_split_is_by_photo_disjoint_and_stable(tmp_path):
    photos = tmp_path / "photos"
    for n in range(60):
        write(photos / f"{n // 10}" / f"p{n}.png", n)
    train = {p.key for p in find_pairs(f"folder:{photos}", split="train")}
    val = {p.key for p in find_pairs(f"folder:{photos}", split="val")}
    everything = {p.key for p in find_pairs(f"folder:{photos}", split="all")}
    assert train.isdisjoint(val) and train | val == everything and len(everything) == 60
    assert 1 <= len(val) <= 15  # about 10 %
    write(photos / "new.png", 1)  # adding photos moves none of the others
    write(photos / "0" / "p0.jpg", 0)  # the same photo in another format stays on the same side
    val_after = {p.key for p in find_pairs(f"folder:{photos}", split="val")}
    assert val <= val_after and ("0/p0.jpg" in val_after) == ("0/p0.png" in val)
    wider = {p.key for p in find_pairs(f"folder:{photos}", split="val", val_fraction=0.5)}
    assert val <= wider and len(wider) > len(val)
    with pytest.raises(DatasetError, match="none of its 62 images falls in the train split"):
        find_pairs(f"folder:{photos}", split="train", val_fraction=0.99999)


def test_folder_dataset_keeps_16_bit_grey_and_alpha_images_in_range(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "deep.png"), np.full((16, 16, 3), 65535 // 2, np.uint16))
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(photos / "grey.png")
    Image.fromarray(np.dstack([np.full((16, 16, 3), 100, np.uint8), np.zeros((16, 16), np.uint8)])).save(
        photos / "alpha.png")
    dataset = build_dataset(f"folder:{photos}", split="all", crop=8, degradations="noise:0")
    levels = {item["key"]: item["gt"].mean().item() * 255 for item in dataset}
    assert levels == pytest.approx({"alpha.png": 100, "deep.png": 127.5, "grey.png": 200}, abs=0.6)
    for item in dataset:  # sigma 0 leaves the 8-bit-quantised clean image
        assert torch.allclose(item["lq"], item["gt"], atol=1 / 255)


# ---------------------------------------------------------------------------- crops and determinism


def test_synthetic_crop_is_degraded_with_context_like_the_whole_photo(tmp_path):
    rgb = write_noise(tmp_path / "photos" / "p.png", np.random.default_rng(0), size=(120, 130))
    dataset = build_dataset(f"folder:{tmp_path / 'photos'}", split="val", crop=32, val_fraction=0.999,
                            degradations="gaussian_blur:2")
    item = dataset[0]
    top, left = (120 - 32) // 2, (130 - 32) // 2  # validation crops are centred
    clean = rgb.astype(np.float32) / 255
    assert np.array_equal(item["gt"].permute(1, 2, 0).numpy(), clean[top:top + 32, left:left + 32])
    whole = gaussian_blur(clean, np.random.default_rng(0), sigma=2.0).image[top:top + 32, left:left + 32]
    assert np.abs(item["lq"].permute(1, 2, 0).numpy() - whole).max() <= 1 / 255 + 1e-6


def test_same_seed_and_epoch_repeat_and_a_new_epoch_draws_new_crops(tmp_path):
    rng = np.random.default_rng(0)
    for n in range(3):
        write_noise(tmp_path / "photos" / f"{n}.png", rng)
    spec = f"folder:{tmp_path / 'photos'}"
    first, again = (build_dataset(spec, split="all", crop=16, augment=True, seed=3) for _ in range(2))
    for i in range(3):
        a, b = first[i], again[i]
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"]) and a["prompt"] == b["prompt"]
    again.set_epoch(1)
    assert not any(torch.equal(first[i]["gt"], again[i]["gt"]) for i in range(3))
    other_seed = build_dataset(spec, split="all", crop=16, augment=True, seed=4)
    assert not torch.equal(first[0]["lq"], other_seed[0]["lq"])


def test_pixel_cache_gives_the_same_items_and_decodes_each_photo_once(tmp_path):
    rng = np.random.default_rng(0)
    for n in range(3):
        write_noise(tmp_path / "photos" / f"{n}.png", rng)
    spec = f"folder:{tmp_path / 'photos'}"
    plain = build_dataset(spec, split="all", crop=16, augment=True, seed=3, length=12)
    cached = build_dataset(spec, split="all", crop=16, augment=True, seed=3, length=12, cache_mb=1)
    for i in range(12):
        a, b = plain[i], cached[i]
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
    assert (cached.pixel_cache.misses, cached.pixel_cache.hits, len(cached.pixel_cache)) == (3, 9, 3)
    assert plain.pixel_cache is None


def test_broad_family_specs_degrade_training_photos(tmp_path):
    rng = np.random.default_rng(0)
    for n in range(2):
        write_noise(tmp_path / "photos" / f"{n}.png", rng, size=(80, 90))
    dataset = build_dataset(f"folder:{tmp_path / 'photos'}", split="all", crop=48, augment=True, degradations="broad:rain", length=6)
    for i in range(6):
        item = dataset[i]
        assert item["labels"][LABEL_INDEX["rain"]] == 1 and item["labels"].sum() == 1
        assert not torch.equal(item["lq"], item["gt"])
        assert item["prompt"] == "" or "rain" in item["prompt"].lower()  # the description (or a dropped prompt)
    with pytest.raises(ValueError, match="unknown broad family"):
        build_dataset(f"folder:{tmp_path / 'photos'}", split="all", crop=48, degradations="broad:snow")


def test_pixel_cache_keeps_the_most_recent_photos_within_its_budget_read_only(tmp_path):
    from irestore.data.images import PixelCache, read_pixels

    rng = np.random.default_rng(0)
    paths = [tmp_path / f"{n}.png" for n in range(3)]
    for path in paths:
        write_noise(path, rng, size=(10, 10))  # 300 bytes each
    cache = PixelCache(650)
    for path in (paths[0], paths[1], paths[0], paths[2]):  # 1 is the least recently used when 2 arrives
        pixels = cache.read(path)
        assert np.array_equal(pixels, read_pixels(path)) and not pixels.flags.writeable
    assert cache.bytes == 600 and len(cache) == 2
    hits = cache.hits
    cache.read(paths[0]), cache.read(paths[2])
    assert cache.hits == hits + 2
    cache.read(paths[1])
    assert cache.hits == hits + 2  # it had been dropped
    tiny = PixelCache(100)  # a photo over the whole budget is read each time, not kept
    tiny.read(paths[0])
    assert len(tiny) == 0 and tiny.bytes == 0
    with pytest.raises(ValueError, match="non-negative"):
        PixelCache(-1)


def test_validation_items_do_not_change_with_the_epoch(tmp_path):
    root, _, _ = gopro(tmp_path)
    for n in range(2):
        write_noise(tmp_path / "photos" / f"{n}.png", np.random.default_rng(n))
    for spec, split in ((f"folder:{tmp_path / 'photos'}", "all"), (f"gopro:{root}", "test")):
        dataset = build_dataset(spec, split=split, crop=8)
        assert dataset.augment is False
        before = [dataset[i] for i in range(len(dataset))]
        dataset.set_epoch(5)
        for i, item in enumerate(before):
            assert torch.equal(item["lq"], dataset[i]["lq"]) and item["prompt"] == dataset[i]["prompt"]


def test_virtual_length_repeats_photos_with_other_crops(tmp_path):
    write_noise(tmp_path / "photos" / "only.png", np.random.default_rng(0))
    dataset = build_dataset(f"folder:{tmp_path / 'photos'}", split="all", crop=16, augment=True, length=5)
    items = [dataset[i] for i in range(5)]
    assert {item["key"] for item in items} == {"only.png"}
    assert len({item["gt"].numpy().tobytes() for item in items}) == 5
    with pytest.raises(IndexError):
        dataset[5]


def test_small_images_are_padded_to_the_crop_and_full_images_kept_without_crop(tmp_path):
    root, split, _ = lol(tmp_path)
    assert build_dataset(f"lol:{root}", split=split, crop=32)[0]["gt"].shape == (3, 32, 32)
    assert build_dataset(f"lol:{root}", split=split, crop=None)[0]["gt"].shape == (3, *SIZE)


def test_dataloader_with_two_workers(tmp_path):
    rng = np.random.default_rng(0)
    for n in range(6):
        write_noise(tmp_path / "photos" / f"{n}.jpg", rng)
    dataset = build_dataset(f"folder:{tmp_path / 'photos'}", split="all", crop=16, augment=True)
    batches = list(DataLoader(dataset, batch_size=3, num_workers=2))
    assert len(batches) == 2
    assert batches[0]["lq"].shape == (3, 3, 16, 16) and batches[0]["labels"].shape == (3, len(LABELS))
    assert len(batches[0]["prompt"]) == 3 and len(batches[1]["key"]) == 3
    assert torch.equal(batches[1]["lq"][2], dataset[5]["lq"])  # workers draw what the main process draws
    restored = pickle.loads(pickle.dumps(dataset))  # what a spawned worker receives
    assert torch.equal(restored[4]["gt"], dataset[4]["gt"])


def test_items_indexed_with_their_epoch_in_persistent_workers(tmp_path):
    for n in range(4):
        write_noise(tmp_path / "photos" / f"{n}.png", np.random.default_rng(n))
    dataset = build_dataset(f"folder:{tmp_path / 'photos'}", split="all", crop=16, augment=True)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, persistent_workers=True,
                        sampler=[(1, 0), (1, 1), (2, 0), (2, 1)])
    (batch,) = list(loader)
    for position, epoch, index in ((0, 1, 0), (1, 1, 1), (2, 2, 0), (3, 2, 1)):
        dataset.set_epoch(epoch)
        assert torch.equal(batch["gt"][position], dataset[index]["gt"])
    assert not torch.equal(batch["gt"][0], batch["gt"][2])  # item 0 in epochs 1 and 2
    with pytest.raises(ValueError, match="epoch must be non-negative"):
        dataset[(-1, 0)]


# ---------------------------------------------------------------------------- prompts


def test_prompts_from_sidecars_and_prompt_files_keyed_by_path(tmp_path):
    photos = tmp_path / "photos"
    for name in ("b.png", "a.png", "sub/c.png"):
        write(photos / name, 100)
    (photos / "a.txt").write_text("a red barn\n", encoding="utf-8")
    spec = f"folder:{photos}"
    by_key = {item["key"]: item["prompt"] for item in build_dataset(spec, split="all", crop=8)}
    assert by_key["a.png"] == "a red barn"
    assert by_key["b.png"] not in ("", "a red barn")  # the synthetic description

    rows = [{"path": "sub/c.png", "prompt": "a tiled roof"}, {"path": "b.png", "prompt": "two boats"}]
    table = tmp_path / "prompts.csv"  # rows in another order than the dataset's
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["path", "prompt"])
        writer.writeheader()
        writer.writerows(rows)
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for prompt_file in (table, jsonl):
        by_key = {item["key"]: item["prompt"] for item in build_dataset(spec, split="all", crop=8, prompts=prompt_file)}
        assert by_key["sub/c.png"] == "a tiled roof" and by_key["b.png"] == "two boats"
        assert by_key["a.png"] == "a red barn"  # no row: the sidecar still applies

    dropped = build_dataset(spec, split="all", crop=8, prompt_dropout=1.0)
    assert all(item["prompt"] == "" for item in dropped)


def test_paired_prompts_come_from_a_file_keyed_by_the_sample_path(tmp_path):
    root, _, _ = gopro(tmp_path)
    rows = "path,prompt\nGOPR0384_11_00/blur/000001.png,a street at night\n"
    (tmp_path / "p.csv").write_text(rows, encoding="utf-8")
    dataset = build_dataset("gopro", root=root, split="test", crop=8, prompts=tmp_path / "p.csv")
    assert dataset[1]["prompt"] == "a street at night"
    assert "blur" in dataset[0]["prompt"] or "camera shake" in dataset[0]["prompt"]


# ---------------------------------------------------------------------------- errors and verify


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'gopr'"):
        find_pairs("gopr", tmp_path)
    with pytest.raises(DatasetError, match=r"GOPRO_Large/\{train,test\}"):
        find_pairs("gopro", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no dataset folder"):
        find_pairs("sots-outdoor")
    gopro(tmp_path)
    with pytest.raises(ValueError, match="no split 'val'"):
        find_pairs("gopro", tmp_path, "val")
    with pytest.raises(ValueError, match="paired dataset"):
        build_dataset("gopro", root=tmp_path, degradations="noise")
    with pytest.raises(ValueError, match="pairs:LQ_DIR,GT_DIR"):
        find_pairs(f"pairs:{tmp_path}")
    bad = tmp_path / "photos" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ImageError, match="broken.png"):
        build_dataset(f"folder:{bad.parent}", split="all", crop=8)[0]


def test_verify_reports_missing_folders_and_unmatched_files(tmp_path):
    root, _, _ = gopro(tmp_path)
    (root / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "sharp" / "000001.png").unlink()
    report = verify_layout("gopro", root)
    train, test = report.splits
    assert (train.found, train.expected, test.found, test.expected) == (4, 2103, 1, 1111)
    assert test.unmatched_lq == [str(root / "GOPRO_Large/test/GOPR0384_11_00/blur/000001.png")]
    assert not report.complete
    text = report.summary()
    assert "1/1111" in text and "000001.png" in text and "1110 missing" in text

    sots = tmp_path / "SOTS" / "outdoor"
    write(sots / "hazy" / "0001_0.8_0.2.jpg", 10)
    report = verify_layout("sots-outdoor", tmp_path)
    assert report.splits[0].missing == [f"{sots}/gt/ (or clear, target)"]
    assert "gt/" in report.summary()


def test_verify_complete_dataset_and_cli(tmp_path):
    base = tmp_path / "CBSD68" / "original_png"
    for n in range(68):
        write(base / f"{n:04d}.png", n, size=(8, 8))
    report = verify_layout("cbsd68", tmp_path)
    assert report.complete and report.splits[0].found == 68

    from irestore.cli.app import app

    runner = CliRunner()
    ok = runner.invoke(app, ["data", "verify", "cbsd68", "--root", str(tmp_path), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["splits"][0]["found"] == 68
    (base / "0067.png").write_bytes(b"not a png")
    decoded = runner.invoke(app, ["data", "verify", "cbsd68", "--root", str(tmp_path), "--decode"])
    assert decoded.exit_code == 1 and "0067.png" in decoded.output and "unreadable" in decoded.output
    (base / "0067.png").unlink()
    short = runner.invoke(app, ["data", "verify", f"cbsd68:{tmp_path}"])
    assert short.exit_code == 1 and "67/68" in short.output and "1 missing" in short.output
    unknown = runner.invoke(app, ["data", "verify", "nope", "--root", str(tmp_path)])
    assert unknown.exit_code == 2 and "unknown dataset" in unknown.output
    listing = runner.invoke(app, ["data", "list", "--json"])
    assert listing.exit_code == 0
    rows = {row["name"]: row for row in json.loads(listing.output)}
    assert set(rows) == set(LAYOUTS) and rows["gopro"]["expected"] == {"train": 2103, "test": 1111}
