"""Copy a trained checkpoint into the package as a shipped model (through the production
checkpoint code, so the saved config and the safetensors header agree).

    python scripts/package_model.py restorer RUN/best allinone-small \
        --classifier degnet-default --sampler posterior --steps 2
    python scripts/package_model.py classifier RUN/best degnet-default

Writes src/irestore/assets/NAME/{model.safetensors,config.json}; the model card (README.md
in the same folder) is written by hand from the measured results. A restorer's classifier
reference is replaced by the shipped classifier's name, so the package never points at a
training run folder.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from irestore.conditioning.classifier import load_classifier, save_classifier
from irestore.diffusion.checkpoint import load_checkpoint, save_checkpoint
from irestore.registry import list_samplers

ASSETS = Path(__file__).resolve().parents[1] / "src" / "irestore" / "assets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("restorer", "classifier"))
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("name")
    parser.add_argument("--classifier", help="restorer: the shipped classifier it was trained with")
    parser.add_argument("--sampler", choices=sorted(list_samplers()), help="restorer: default sampler")
    parser.add_argument("--steps", type=int, help="restorer: default steps")
    args = parser.parse_args()
    out = ASSETS / args.name
    if args.kind == "classifier":
        network, info = load_classifier(args.checkpoint)
        save_classifier(out, network, replace(info, name=args.name))
    else:
        network, info = load_checkpoint(args.checkpoint)
        if info.classifier and not args.classifier:
            parser.error(f"{args.checkpoint} was trained with classifier {info.classifier}: name its shipped copy with --classifier")
        info = replace(
            info,
            name=args.name,
            classifier=args.classifier or info.classifier,
            default_sampler=args.sampler or info.default_sampler,
            default_steps=args.steps or info.default_steps,
        )
        save_checkpoint(out, network, info)
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"wrote {out} ({size:.2f} MB)")


if __name__ == "__main__":
    main()
