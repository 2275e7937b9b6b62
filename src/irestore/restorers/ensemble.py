"""Test-time self-ensemble: restore the 8 flips and rotations of an image and average them.

Convolutional restorers are not exactly equivariant to flips and 90-degree rotations, so their
errors partly cancel in the average (EDSR, Lim et al. 2017; +0.1-0.2 dB for denoisers is typical).
It costs ``count`` runs. Any method can be wrapped; size-changing ones keep working because the
target size is rotated with the image.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from irestore.restorers.base import Card, Condition, RestorationMethod, RunSettings

__all__ = ["COUNTS", "SelfEnsemble", "dihedral", "ensemble_card", "undo_dihedral"]

COUNTS = (1, 2, 4, 8)
# (quarter turns, horizontal flip): the first n of these are used for n = 2, 4, 8
_TRANSFORMS = ((0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True))


def dihedral(image: Tensor, turns: int, flip: bool) -> Tensor:
    out = image.flip(-1) if flip else image
    return torch.rot90(out, turns, dims=(-2, -1))


def undo_dihedral(image: Tensor, turns: int, flip: bool) -> Tensor:
    out = torch.rot90(image, -turns, dims=(-2, -1))
    return out.flip(-1) if flip else out


def ensemble_card(base: Card, count: int) -> Card:
    """The card of ``base`` under a ``count``-fold self-ensemble (the same fixes, ``count`` times the cost)."""
    if count not in COUNTS:
        raise ValueError(f"self-ensemble size must be one of {', '.join(map(str, COUNTS))}, not {count}")
    return replace(
        base, name=f"{base.name}+ensemble{count}", summary=f"{base.summary}; self-ensemble of {count} flips/rotations",
        s_per_mp=None if base.s_per_mp is None else round(base.s_per_mp * count, 2), ensemble_gain=None,
    )


class SelfEnsemble(RestorationMethod):
    """``method`` run on ``count`` flipped/rotated copies, averaged (``count`` of 1, 2, 4 or 8)."""

    def __init__(self, method: RestorationMethod, count: int = 8) -> None:
        self.method, self.count = method, count
        self.card: Card = ensemble_card(method.card, count)

    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        total = None
        for turns, flip in _TRANSFORMS[: self.count]:
            size = condition.target_size
            turned = condition if size is None or turns % 2 == 0 else replace(condition, target_size=(size[1], size[0]))
            out = undo_dihedral(self.method.restore(dihedral(image, turns, flip), turned, settings), turns, flip)
            total = out if total is None else total + out
        return (total / self.count).clamp(0, 1)

    def settings(self) -> dict:
        return {**self.method.settings(), "ensemble": self.count}
