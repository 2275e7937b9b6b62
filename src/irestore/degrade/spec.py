"""The degradation spec language (``noise:25``, ``rain:heavy``, ``mix:haze+noise``) and `degrade`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from irestore.degrade.ops import DEGRADATIONS
from irestore.degrade.params import MIX_ORDER, PRIMARY, SEVERITIES, Degraded, Range, family_of

_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_ARG = re.compile(rf"^{_NUM}(?:-{_NUM})?$")


@dataclass(frozen=True)
class SpecItem:
    """One alternative of a spec: a degradation name and its primary value, range or severity."""

    name: str
    value: float | Range | None = None
    severity: str | None = None
    kinds: tuple[str, ...] | None = None  # mix only: the kinds to combine (``mix:haze+noise``)

    def kwargs(self) -> dict:
        """Keyword arguments for ``DEGRADATIONS[name]``."""
        out: dict = {} if self.severity is None else {"severity": self.severity}
        if self.value is not None:
            out[PRIMARY[self.name].name] = self.value
        if self.kinds is not None:
            out["kinds"] = list(self.kinds)
        return out


def parse_spec(spec: str) -> tuple[SpecItem, ...]:
    """Parse ``"noise:0-50,rain:heavy,jpeg:10,mix"``: comma-separated alternatives, each
    ``name``, ``name:value``, ``name:low-high`` or ``name:light|moderate|heavy``; a mixture of
    chosen kinds is ``mix:haze+noise`` or ``mix:haze+rain+noise:moderate``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty degradation spec")
    return tuple(_parse_item(part.strip()) for part in spec.split(","))


def _parse_item(text: str) -> SpecItem:
    name, _, arg = (s.strip() for s in text.partition(":"))
    name = name.lower()
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r} in spec; known: {', '.join(DEGRADATIONS)}")
    if not arg:
        if ":" in text:
            raise ValueError(f"empty argument after {name!r}")
        return SpecItem(name)
    if name == "mix" and "+" in arg:
        return _parse_mix(arg)
    if arg.lower() in SEVERITIES:
        return SpecItem(name, severity=arg.lower())
    if name not in PRIMARY:
        raise ValueError(
            f"{name!r} takes only a severity word ({'/'.join(SEVERITIES)}), got {arg!r}"
        )
    return SpecItem(name, value=_parse_value(name, arg))


def _parse_mix(arg: str) -> SpecItem:
    kinds_text, _, severity = arg.partition(":")
    kinds = tuple(k.strip().lower() for k in kinds_text.split("+"))
    families = [family_of(k) for k in kinds]
    if any(k not in DEGRADATIONS or family_of(k) not in MIX_ORDER for k in kinds) or len(set(families)) != len(families):
        raise ValueError(f"mix:{arg}: expected distinct kinds from {', '.join(MIX_ORDER)} joined by '+'")
    if severity and severity.lower() not in SEVERITIES:
        raise ValueError(f"mix:{arg}: unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}")
    return SpecItem("mix", severity=severity.lower() or None, kinds=kinds)


def _parse_value(name: str, arg: str) -> float | Range:
    p = PRIMARY[name]
    m = _ARG.match(arg)
    if not m:
        raise ValueError(
            f"bad argument {arg!r} for {name!r}: expected a number, 'low-high' or a severity word"
        )
    nums = [float(g) for g in m.groups() if g is not None]
    for v in nums:
        if not p.limits[0] <= v <= p.limits[1]:
            raise ValueError(
                f"{name} {p.name} {v:g} outside allowed range {p.limits[0]:g}-{p.limits[1]:g}"
            )
        if p.integer and v != int(v):
            raise ValueError(f"{name} {p.name} must be an integer, got {v:g}")
    if len(nums) == 2 and nums[0] > nums[1]:
        raise ValueError(f"bad range {arg!r} for {name!r}: low > high")
    return nums[0] if len(nums) == 1 else (nums[0], nums[1])


def degrade(
    image: np.ndarray, spec: str | Sequence[SpecItem], rng: np.random.Generator
) -> Degraded:
    """Apply one degradation drawn from ``spec`` (see :func:`parse_spec`)."""
    items = parse_spec(spec) if isinstance(spec, str) else tuple(spec)
    item = items[int(rng.integers(len(items)))] if len(items) > 1 else items[0]
    return DEGRADATIONS[item.name](image, rng, **item.kwargs())
