"""Checkpoint files are read without unpickling: a pickled object is refused and runs nothing."""

from __future__ import annotations

import pytest
import torch


class _Payload:
    """An object whose unpickling would run code: what a malicious checkpoint carries."""

    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Payload.ran = True
    return {}


def test_pickled_checkpoints_are_refused_and_run_nothing(tmp_path):
    from irestore.models.ffdnet import load_ffdnet
    from irestore.training.state import StateError, load_state

    path = tmp_path / "state.pt"
    torch.save({"version": 1, "payload": _Payload()}, path)
    with pytest.raises(StateError, match="unreadable resume state"):
        load_state(path)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_ffdnet(path)
    assert not _Payload.ran
