"""Hand mutations of the diffusion core, each applied alone, with the tests that must catch it.

    python scripts/mutation_check.py            # every mutation; prints caught / MISSED per line
    python scripts/mutation_check.py --list     # the mutations only

Each mutation replaces one exact piece of source (it must occur exactly once), runs the core
tests in a subprocess and restores the file, whatever happens. Exit status 1 if any mutation
was missed, so a test that stopped being able to fail is found.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/diffusion/test_sampler_reference.py", "tests/diffusion/test_sde.py", "tests/models/test_networks.py", "tests/diffusion/test_pipeline.py"]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    original: str
    mutated: str


SAMPLING, SDE, LAYERS = "src/irestore/diffusion/sampling.py", "src/irestore/diffusion/sde.py", "src/irestore/models/layers.py"
MUTATIONS = [
    Mutation("euler: noise term dropped", SAMPLING, "noise=_randn(x, generator) if s > 0 else None", "noise=None"),
    Mutation("euler: predicted at the next time", SAMPLING, "score = sde.score_from_noise(_predict(model, x, lq, t, cond), t)",
             "score = sde.score_from_noise(_predict(model, x, lq, s, cond), t)"),
    Mutation("euler: score sign flipped", SAMPLING, "score = sde.score_from_noise(_predict(model, x, lq, t, cond), t)",
             "score = -sde.score_from_noise(_predict(model, x, lq, t, cond), t)"),
    Mutation("posterior: noise scale x3", SAMPLING, "x = mean + std * _randn(x, generator)", "x = mean + 3 * std * _randn(x, generator)"),
    Mutation("posterior: noise dropped", SAMPLING, "x = mean + std * _randn(x, generator)", "x = mean"),
    Mutation("posterior: x0 at the wrong time", SAMPLING, "x0 = sde.x0_from_noise(x, lq, eps, t)", "x0 = sde.x0_from_noise(x, lq, eps, s)"),
    Mutation("ddim: update at time t instead of s", SAMPLING, "x = sde.forward_sample(x0, lq, s, eps)", "x = sde.forward_sample(x0, lq, t, eps)"),
    Mutation("ddim: noise sign flipped", SAMPLING, "x = sde.forward_sample(x0, lq, s, eps)", "x = sde.forward_sample(x0, lq, s, -eps)"),
    Mutation("ddim: noise x3", SAMPLING, "x = sde.forward_sample(x0, lq, s, eps)", "x = sde.forward_sample(x0, lq, s, 3 * eps)"),
    Mutation("sde step: drift sign flipped", SDE, "out = xt - drift", "out = xt + drift"),
    Mutation("sde step: score weight 1 instead of 2", SDE, "drift = delta * (mu - xt) - 2 * self.lam**2 * delta * score",
             "drift = delta * (mu - xt) - self.lam**2 * delta * score"),
    Mutation("sde step: noise scale halved", SDE, "out = out - torch.sqrt(2 * self.lam**2 * delta) * noise",
             "out = out - torch.sqrt(0.5 * self.lam**2 * delta) * noise"),
    Mutation("sde: schedule looked up one index late", SDE, "return table.to(t.device)[t.long()].reshape(-1, 1, 1, 1)",
             "return table.to(t.device)[(t.long() + 1).clamp(max=table.shape[0] - 1)].reshape(-1, 1, 1, 1)"),
    Mutation("sde: marginal decay squared", SDE, "return mu + (x0 - mu) * _as(torch.exp(-self.theta_bar(t)), x0)",
             "return mu + (x0 - mu) * _as(torch.exp(-2 * self.theta_bar(t)), x0)"),
    Mutation("fusion: absent rows keep their embedding", LAYERS,
             "return projected if present is None else torch.where(present[:, None], projected, absent)", "return projected"),
    Mutation("fusion: zeros instead of the learned vector", LAYERS, "            return absent\n", "            return 0 * absent\n"),
]


def run_tests() -> bool:
    """True when the core tests pass (the mutation was missed)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                          cwd=ROOT, capture_output=True, text=True)
    return done.returncode == 0


def check(mutation: Mutation) -> bool:
    path = ROOT / mutation.file
    source = path.read_text()
    if source.count(mutation.original) != 1:
        raise SystemExit(f"{mutation.name}: the original text is not in {mutation.file} exactly once; update the mutation")
    try:
        path.write_text(source.replace(mutation.original, mutation.mutated))
        return not run_tests()
    finally:
        path.write_text(source)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    args = parser.parse_args()
    if args.list:
        for mutation in MUTATIONS:
            print(f"{mutation.file}: {mutation.name}")
        return 0
    missed = 0
    for mutation in MUTATIONS:
        caught = check(mutation)
        missed += not caught
        print(f"{'caught' if caught else 'MISSED'}  {mutation.name}", flush=True)
    print(f"{len(MUTATIONS) - missed} of {len(MUTATIONS)} mutations caught by {' '.join(TESTS)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
