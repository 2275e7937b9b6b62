"""Which restorations an image needs, in which order (M3UNET-style routing from the classifier).

Degradations are undone in the reverse of the order a camera pipeline (and ``degrade.mix``)
applies them: scene (haze, rain), optics (blur), sampling (resolution), exposure, sensor
noise, compression. So JPEG blocks come off first and haze last.
"""

from __future__ import annotations

from irestore.conditioning.classifier import Classification

RESTORATIONS: dict[str, str] = {
    "jpeg": "jpeg-artifact-removal",
    "noise": "denoise",
    "lowlight": "low-light-enhancement",
    "lowres": "super-resolution",
    "motion_blur": "motion-deblur",
    "defocus_blur": "defocus-deblur",
    "rain": "derain",
    "haze": "dehaze",
}
UNDO_ORDER = tuple(RESTORATIONS)  # dict order above is the order to undo degradations


def route(classification: Classification) -> list[str]:
    """Restorations for the detected degradations, in the order to apply them; [] for clean."""
    found = set(classification.labels) - {"clean"}
    return [RESTORATIONS[label] for label in UNDO_ORDER if label in found]
