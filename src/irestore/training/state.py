"""The exact-resume state of a run (RUN_DIR/state.pt): weights, optimiser, scheduler, EMA,
random generator states, step and position in the epoch.

Everything is stored as tensors, numbers, strings, lists and dicts, so it loads with
`torch.load(weights_only=True)`: nothing is unpickled.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irestore.io import atomic_path

STATE_NAME = "state.pt"
STATE_VERSION = 1


class StateError(ValueError):
    """A resume state that cannot be used; the message names the file."""


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states in weights_only-safe types."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["internal"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["position"], numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write the state atomically (a crash leaves the previous state intact)."""
    with atomic_path(path) as tmp:
        torch.save({"version": STATE_VERSION, **state}, tmp)


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise StateError(f"{path}: no resume state found (was the run saved? it is written with every checkpoint)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated files and foreign pickles alike
        raise StateError(f"{path}: unreadable resume state ({error})") from error
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise StateError(f"{path}: not an irestore resume state (version {STATE_VERSION})")
    return state
