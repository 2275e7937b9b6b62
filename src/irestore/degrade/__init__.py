"""Synthetic degradations: seeded operations with recorded parameters and text descriptions.

- :mod:`~irestore.degrade.params` — the families, their severity bands and parameter ranges
  (the table of ranges is there), :class:`Degraded`;
- :mod:`~irestore.degrade.kernels` — blur kernels and the convolution;
- :mod:`~irestore.degrade.ops` — the operations (``noise``, ``motion``, ``rain``, ``haze``, ...)
  and :data:`DEGRADATIONS`, name -> operation;
- :mod:`~irestore.degrade.phrasing` — descriptions of the parameters (training prompts);
- :mod:`~irestore.degrade.spec` — the spec language (``noise:25``, ``mix:haze+noise``) and
  :func:`degrade`;
- :mod:`~irestore.degrade.broad` — the broad random family the classifier and specialists
  train on (imported on its own: it is not needed to degrade by spec).
"""

from irestore.degrade.kernels import convolve, disk_kernel, gaussian_kernel, kernel_from_params, motion_kernel
from irestore.degrade.ops import (
    DEGRADATIONS,
    blur,
    clean,
    defocus,
    depth_proxy,
    gaussian_blur,
    haze,
    jpeg,
    lowlight,
    lowres,
    mix,
    motion,
    noise,
    quantize,
    rain,
    rain_layer,
    unit_range,
)
from irestore.degrade.params import (
    BLUR_KINDS,
    HAZE_DEPTH,
    MIX_ORDER,
    NOISE_KINDS,
    PRIMARY,
    SEVERITIES,
    Degraded,
    Param,
    Range,
    family_of,
)
from irestore.degrade.phrasing import describe
from irestore.degrade.spec import SpecItem, degrade, parse_spec

__all__ = [
    "BLUR_KINDS",
    "DEGRADATIONS",
    "Degraded",
    "HAZE_DEPTH",
    "MIX_ORDER",
    "NOISE_KINDS",
    "PRIMARY",
    "Param",
    "Range",
    "SEVERITIES",
    "SpecItem",
    "blur",
    "clean",
    "convolve",
    "defocus",
    "degrade",
    "depth_proxy",
    "describe",
    "disk_kernel",
    "family_of",
    "gaussian_blur",
    "gaussian_kernel",
    "haze",
    "jpeg",
    "kernel_from_params",
    "lowlight",
    "lowres",
    "mix",
    "motion",
    "motion_kernel",
    "noise",
    "parse_spec",
    "quantize",
    "rain",
    "rain_layer",
    "unit_range",
]
