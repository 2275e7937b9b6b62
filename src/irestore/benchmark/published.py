"""Published PSNR/SSIM on the standard suites, printed beside measured numbers (never mixed with them).

Sources (values as printed in the papers):

* 3-task all-in-one (CBSD68 σ15/25/50, Rain100L, SOTS-outdoor): PromptIR (NeurIPS 2023) Table 1,
  which also lists AirNet (CVPR 2022); InstructIR (ECCV 2024) Table 3 for InstructIR-3D.
* CBM3D and FFDNet on CBSD68: PromptIR Table 4 (single-task denoising, after AirNet's table).
* 5-task all-in-one (Rain100L, SOTS-outdoor, CBSD68 σ25, GoPro, LOL): InstructIR Table 2
  (after IDR, CVPR 2023), for AirNet, IDR and InstructIR-5D.

They were measured under the AirNet/PromptIR test code (protocol ``promptir``) on the full test sets.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PUBLISHED", "PUBLISHED_PROTOCOL", "PublishedRow", "published_for"]

PUBLISHED_PROTOCOL = "promptir"


@dataclass(frozen=True)
class PublishedRow:
    method: str
    source: str
    scores: dict[str, tuple[float, float]]  # task name -> (PSNR, SSIM)
    average: tuple[float, float] | None = None  # as printed (over the paper's task list)


_DENOISE_3 = ("cbsd68-s15", "cbsd68-s25", "cbsd68-s50")
_THREE = (*_DENOISE_3, "rain100l", "sots-outdoor")
_FIVE = ("rain100l", "sots-outdoor", "cbsd68-s25", "gopro", "lol")


def _row(method: str, source: str, tasks: tuple[str, ...], values: list[tuple[float, float]], average=None):
    return PublishedRow(method, source, dict(zip(tasks, values, strict=True)), average)


_CBM3D = _row("CBM3D", "PromptIR Tab. 4 (single task)", _DENOISE_3, [(33.50, 0.922), (30.69, 0.868), (27.36, 0.763)])
_FFDNET = _row("FFDNet", "PromptIR Tab. 4 (single task)", _DENOISE_3, [(33.87, 0.929), (31.21, 0.882), (27.96, 0.789)])

PUBLISHED: dict[str, list[PublishedRow]] = {
    "all-in-one": [
        _row("AirNet", "PromptIR Tab. 1", _THREE,
             [(33.92, 0.933), (31.26, 0.888), (28.00, 0.797), (34.90, 0.967), (27.94, 0.962)], (31.20, 0.910)),
        _row("PromptIR", "PromptIR Tab. 1", _THREE,
             [(33.98, 0.933), (31.31, 0.888), (28.06, 0.799), (36.37, 0.972), (30.58, 0.974)], (32.06, 0.913)),
        _row("InstructIR-3D", "InstructIR Tab. 3", _THREE,
             [(34.15, 0.933), (31.52, 0.890), (28.30, 0.804), (37.98, 0.978), (30.22, 0.959)], (32.43, 0.913)),
        _CBM3D,
        _FFDNET,
    ],
    "all-in-one-5": [
        _row("AirNet", "InstructIR Tab. 2", _FIVE,
             [(32.98, 0.951), (21.04, 0.884), (30.91, 0.882), (24.35, 0.781), (18.18, 0.735)], (25.49, 0.846)),
        _row("IDR", "InstructIR Tab. 2", _FIVE,
             [(35.63, 0.965), (25.24, 0.943), (31.60, 0.887), (27.87, 0.846), (21.34, 0.826)], (28.34, 0.893)),
        _row("InstructIR-5D", "InstructIR Tab. 2", _FIVE,
             [(36.84, 0.973), (27.10, 0.956), (31.40, 0.887), (29.40, 0.886), (23.00, 0.836)], (29.55, 0.907)),
    ],
    "denoise": [_CBM3D, _FFDNET],
}


def published_for(suite: str) -> list[PublishedRow]:
    return PUBLISHED.get(suite, [])
