"""What a prompt asks of the plan: which degradations to remove, to leave alone, or to remove only.

"remove the rain" asks for a deraining step; "denoise only" for a denoising step and nothing else;
"keep the grain" forbids denoising; "sharpen" or "enhance details" asks for *detail*, which only a
generative (GAN) member invents, so it lets the planner use one (restoring at the content's
resolution, as for low resolution). A user's prompt *forces* the steps it names (they are run even
when the evaluation sees no gain: the user asked); a caption, which only describes the image,
*adds* them as candidates the search may still reject. Clauses are split at punctuation and at
"and"/"but"; a clause with a negation ("keep", "don't", "no", "without", ...) forbids what it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# label -> words that name it (matched as whole words, case-insensitive)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "noise": ("noise", "noisy", "denoise", "denoising", "grain", "grainy", "speckle"),
    "motion_blur": ("motion blur", "motion-blur", "motion blurred", "camera shake", "shaky", "deblur", "deblurring", "blur", "blurry", "blurred"),
    "defocus_blur": ("defocus", "out of focus", "out-of-focus", "unfocused", "soft focus"),
    "rain": ("rain", "rainy", "derain", "deraining", "rain streaks", "raindrops"),
    "haze": ("haze", "hazy", "dehaze", "dehazing", "fog", "foggy", "mist", "misty", "smog"),
    "lowlight": ("low light", "low-light", "lowlight", "dark", "underexposed", "underexposure", "brighten", "brightening", "too dark"),
    "jpeg": ("jpeg", "jpg", "compression", "compressed", "blocky", "blocking", "artifacts", "artefacts"),
    "lowres": ("low resolution", "low-resolution", "lowres", "pixelated", "upscale", "upscaling", "super-resolution", "super resolution"),
}
NEGATIONS = ("keep", "keeping", "preserve", "preserving", "retain", "leave", "don't", "dont", "do not", "no",
             "not", "never", "without", "avoid")
_CLAUSES = re.compile(r"[.;,!?\n]+|\b(?:and|but|then)\b", re.IGNORECASE)
_PATTERNS = {label: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b",
                               re.IGNORECASE) for label, words in SYNONYMS.items()}
_NEGATION = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in NEGATIONS) + r")\b", re.IGNORECASE)
_ONLY = re.compile(r"\b(?:only|just)\b", re.IGNORECASE)
_DETAIL = re.compile(r"\b(?:sharpen|sharper|sharpness|crisp|crisper|enhance (?:the )?details?|more details?|"
                     r"finer details?|add details?|detail enhancement)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Intent:
    """``force``: steps that must be in the plan; ``add``: candidates whatever the classifier says;
    ``forbid``: never; ``only``: no other labels than ``force | add``."""

    force: frozenset[str] = field(default_factory=frozenset)
    add: frozenset[str] = field(default_factory=frozenset)
    forbid: frozenset[str] = field(default_factory=frozenset)
    only: bool = False
    detail: bool = False  # the user asked for sharper detail: generative members may run

    @property
    def empty(self) -> bool:
        return not (self.force or self.add or self.forbid or self.only or self.detail)

    def to_dict(self) -> dict:
        return {"force": sorted(self.force), "add": sorted(self.add), "forbid": sorted(self.forbid), "only": self.only,
                "detail": self.detail}


def labels_named(text: str) -> set[str]:
    """The degradation labels a piece of text names ("motion blur" names motion_blur only)."""
    found = {label for label, pattern in _PATTERNS.items() if pattern.search(text)}
    if "motion_blur" in found and "defocus_blur" in found and not re.search(r"\bmotion\b|\bshak", text, re.IGNORECASE):
        found.discard("motion_blur")  # "defocus blur" names defocus, not motion
    return found


def parse_intent(text: str | None, from_user: bool = True) -> Intent:
    """The intent of a prompt; ``from_user=False`` for captions (they add candidates, never force)."""
    if not text or not text.strip():
        return Intent()
    named, forbidden, only, detail = set(), set(), False, False
    for clause in _CLAUSES.split(text):
        if not clause or not clause.strip():
            continue
        labels = labels_named(clause)
        if _NEGATION.search(clause):
            forbidden |= labels
        else:
            named |= labels
            only = only or bool(labels and _ONLY.search(clause))
            detail = detail or bool(_DETAIL.search(clause))
    if detail and from_user and "lowres" not in forbidden:
        named.add("lowres")  # detail is invented by restoring at the content's resolution
    named -= forbidden
    if from_user:
        return Intent(force=frozenset(named), forbid=frozenset(forbidden), only=only, detail=detail)
    return Intent(add=frozenset(named), forbid=frozenset(forbidden))
