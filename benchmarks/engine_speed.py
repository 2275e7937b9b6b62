"""Speed of the restoration engine on this machine: seconds per megapixel, tiling, peak memory.

    python benchmarks/engine_speed.py [--size 1024x1024] [--threads 2] [--steps 1,4,10,25,100]
        [--model erunet-small] [--tile 256 --overlap 32] [--json FILE]

The network has random weights (speed does not depend on them). It is saved as a checkpoint
and loaded back with Restorer.from_pretrained, so the production path is what is timed.
Each configuration runs in a fresh subprocess (this script with --one CONFIG), so the
process peak RSS reported per row belongs to that configuration alone. Every timed run
follows one untimed warm-up run (1 step, same image size, same tiling), which also
encodes the prompt, so prompt encoding is cached and excluded from the times. Runs that
would take longer than --max-run-s at --size (predicted from the forward row) are measured
at --small-size instead; each row states its size.
Prints numbers only: no assertions, no thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from irestore.devices import cpu_model

PROMPT = "remove the rain"
SEED = 0


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_checkpoint(model: str, folder: Path) -> Path:
    from irestore.conditioning.text import MiniLMTextEncoder
    from irestore.diffusion.checkpoint import CheckpointInfo, save_checkpoint
    from irestore.diffusion.sde import SDEConfig
    from irestore.registry import create_network

    network = create_network(model, text_dim=MiniLMTextEncoder.dim)
    info = CheckpointInfo(
        network.config, SDEConfig(), MiniLMTextEncoder.name, MiniLMTextEncoder.dim, name=f"{model}-random"
    )
    return save_checkpoint(folder / model, network, info)


# -- one measurement (runs in a child process) ------------------------------------------
def run_one(config: dict) -> dict:
    """Load the checkpoint, warm up once, time one run; returns the row (plus peak RSS)."""
    from irestore.conditioning.text import MiniLMTextEncoder
    from irestore.pipeline import Restorer

    torch.set_num_threads(config["threads"])
    restorer = Restorer.from_pretrained(config["checkpoint"], device="cpu", text_encoder=MiniLMTextEncoder())
    height, width = config["size"]
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(SEED))
    rss_loaded = peak_rss_mb()

    if config["kind"] == "forward":
        cond = restorer.conditioning(PROMPT)
        t = torch.full((1,), restorer.sde.T // 2, dtype=torch.long)
        noisy = restorer.sde.stationary_sample(image, torch.randn(image.shape))

        def go() -> torch.Tensor:
            with torch.inference_mode():
                return restorer.network(noisy, image, t, cond)

        go()  # warm-up
    else:
        kwargs = {
            "prompt": PROMPT,
            "sampler": config["sampler"],
            "tile": config["tile"] or None,
            "tile_overlap": config["overlap"],
            "tile_batch": config["tile_batch"],
        }
        restorer.restore(image, steps=1, generator=torch.Generator().manual_seed(SEED + 1), **kwargs)  # warm-up

        def go() -> torch.Tensor:
            return restorer.restore(
                image, steps=config["steps"], generator=torch.Generator().manual_seed(SEED), **kwargs
            )

    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = go()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    if config.get("save_output"):
        torch.save(out, config["save_output"])
    return {
        **config,
        "seconds": seconds,
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure(config: dict) -> dict:
    """Run one configuration in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(config)]
    env = {**os.environ, "IRESTORE_SYSTEM_MALLOC": "1"} if config.get("system_malloc") else None
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        sys.exit(f"measurement failed: {config}\n{proc.stderr}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("checkpoint", "save_output"):  # temp paths, gone after the run
        row.pop(key, None)
    megapixels = row["size"][0] * row["size"][1] / 1e6
    row["s_per_mp"] = row["seconds"] / megapixels
    row["s_per_mp_per_eval"] = row["s_per_mp"] / max(row.get("steps") or 1, 1)
    return row


# -- the table ----------------------------------------------------------------------------
def label(row: dict) -> str:
    if row["kind"] == "forward":
        return "network forward (1 eval)" + (", glibc malloc" if row.get("system_malloc") else "")
    tiling = f"tiled {row['tile']}/{row['overlap']} b{row['tile_batch']}" if row["tile"] else "untiled"
    return f"{row['sampler']} {row['steps']} step{'s' * (row['steps'] > 1)}, {tiling}"


def print_row(row: dict) -> None:
    size = "{1}x{0}".format(*row["size"])
    print(
        f"{label(row):<38} {size:<11} {row['seconds']:>9.2f} {row['s_per_mp']:>9.2f} "
        f"{row['s_per_mp_per_eval']:>11.2f} {row['user_s']:>8.1f} {row['sys_s']:>8.1f} "
        f"{row['rss_loaded_mb']:>8.0f} {row['peak_rss_mb']:>8.0f}",
        flush=True,
    )


def print_header(args: argparse.Namespace) -> None:
    import transformers

    print(f"irestore engine speed: {args.model} with RANDOM weights (speed only; outputs are meaningless)")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}")
    print(
        f"threads {args.threads} (torch.set_num_threads), CPU: {cpu_model()} ({len(os.sched_getaffinity(0))} cores usable)"
    )
    print(
        f"prompt {PROMPT!r} via MiniLMTextEncoder; fp32 on CPU; wall clock, 1 warm-up run excluded; fresh process per row"
    )
    print(
        f"runs predicted (from the forward row) to take > {args.max_run_s:.0f} s at {args.size} use {args.small_size}; "
        "user/sys = CPU seconds of the timed run; load/peak MB = peak RSS after loading / overall"
    )
    print()
    print(
        f"{'configuration':<38} {'size':<11} {'time s':>9} {'s/MP':>9} {'s/MP/eval':>11} {'user s':>8} {'sys s':>8} {'load MB':>8} {'peak MB':>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1024x1024", help="image size WxH (default 1024x1024)")
    parser.add_argument(
        "--small-size",
        default="512x512",
        help="size for runs predicted to exceed --max-run-s at --size (default 512x512)",
    )
    parser.add_argument(
        "--max-run-s", type=float, default=120, help="predicted run time above which --small-size is used (default 120)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", default="1,4,10,25,100", help="posterior step counts; euler is added at 100")
    parser.add_argument("--model", default="erunet-small")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--tile-batch", type=int, default=4)
    parser.add_argument("--tiled-steps", type=int, default=10, help="step count of the tiled vs untiled comparison")
    parser.add_argument("--json", type=Path, help="also write all rows to this JSON file")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return

    torch.set_num_threads(args.threads)
    print_header(args)
    size, small = parse_size(args.size), parse_size(args.small_size)
    steps = sorted({int(s) for s in args.steps.split(",")} | {args.tiled_steps})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = {
            "checkpoint": str(make_checkpoint(args.model, Path(tmp))),
            "threads": args.threads,
            "overlap": args.overlap,
            "tile_batch": args.tile_batch,
            "tile": 0,
            "steps": 1,
            "sampler": None,
        }

        def add(**config) -> dict:
            rows.append(measure({**base, **config}))
            print_row(rows[-1])
            return rows[-1]

        forward = add(kind="forward", size=size)
        add(kind="forward", size=size, system_malloc=True)  # baseline: freed buffers unmapped (glibc default)
        outputs = {}
        for n in steps:
            run_size = size if forward["s_per_mp"] * size[0] * size[1] / 1e6 * n <= args.max_run_s else small
            samplers = ["posterior", "euler"] if n == 100 else ["posterior"]
            for sampler in samplers:
                save = str(Path(tmp) / "untiled.pt") if n == args.tiled_steps and sampler == "posterior" else None
                row = add(kind="sample", sampler=sampler, steps=n, size=run_size, save_output=save)
                if save:
                    outputs["untiled"] = row
        tiled = add(
            kind="sample",
            sampler="posterior",
            steps=args.tiled_steps,
            size=outputs["untiled"]["size"],
            tile=args.tile,
            save_output=str(Path(tmp) / "tiled.pt"),
        )
        diff = (torch.load(Path(tmp) / "tiled.pt", weights_only=True) - torch.load(Path(tmp) / "untiled.pt", weights_only=True)).abs()

    untiled = outputs["untiled"]
    h, w = untiled["size"]
    print()
    print(
        f"tiled vs untiled, posterior {args.tiled_steps} steps at {w}x{h} (same seed), "
        f"tile {args.tile}, overlap {args.overlap}, tile batch {args.tile_batch}:"
    )
    print(f"  {'':<22} {'untiled':>10} {'tiled':>10}")
    print(
        f"  {'time s':<22} {untiled['seconds']:>10.2f} {tiled['seconds']:>10.2f}   ratio tiled/untiled "
        f"{tiled['seconds'] / untiled['seconds']:.2f}"
    )
    print(
        f"  {'peak RSS MB':<22} {untiled['peak_rss_mb']:>10.0f} {tiled['peak_rss_mb']:>10.0f}   ratio tiled/untiled "
        f"{tiled['peak_rss_mb'] / untiled['peak_rss_mb']:.2f}"
    )
    print(
        f"  output |tiled - untiled| (random-weight net, images in [0,1]): "
        f"mean {diff.mean().item():.2e}, max {diff.max().item():.2e}"
    )
    summary = {
        "tiled_over_untiled_time": tiled["seconds"] / untiled["seconds"],
        "abs_diff_mean": diff.mean().item(),
        "abs_diff_max": diff.max().item(),
    }
    if args.json:
        env = {"torch": torch.__version__, "threads": args.threads, "cpu": cpu_model(), "model": args.model}
        args.json.write_text(json.dumps({"environment": env, "rows": rows, "tiling": summary}, indent=2) + "\n")
        print(f"\nrows written to {args.json}")


if __name__ == "__main__":
    main()
