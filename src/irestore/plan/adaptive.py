"""One image through the adaptive pool: classify, read the prompt's intent, plan, run the plan.

    adaptive = AdaptiveRestorer.create(device="cpu")             # --plan auto, the default pool
    result = adaptive.restore_planned(image, prompt="remove the rain", prompt_source="--prompt")
    result.image, result.plan.spec(), result.plan.to_dict()

``mode`` is ``auto`` (search on the proxy with rollback), ``fixed`` (detected labels in the fixed
order, no evaluation) or an explicit plan (``jpeg:dcp,noise:ffdnet-color``: those steps, in that
order, whatever the classifier says).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace

from torch import Tensor

from irestore import observe
from irestore.conditioning.classifier import DEFAULT_CLASSIFIER, Classification, Classifier
from irestore.plan.intent import Intent, parse_intent
from irestore.plan.pool import DEFAULT_POOL, GENERATIVE_POOL, pool_loaders, preferences
from irestore.plan.search import MODES, Plan, Planner, PlannerSettings, explicit_plan, step_texts
from irestore.registry import create_classifier, method_info
from irestore.restorers.base import RunSettings
from irestore.restorers.catalogue import ENSEMBLE

USER_PROMPT_SOURCES = ("--prompt", "prompt-file", "sidecar")  # a person wrote these: their steps are forced
REFINE_MEMBER = "allinone-small"


@dataclass
class PlanResult:
    image: Tensor
    plan: Plan
    classification: Classification
    prompt: str
    run: list[dict] = field(default_factory=list)  # per step on the whole image: seconds, scores, kept
    seconds: float = 0.0

    @property
    def applied(self) -> str:
        """The steps that ran and were kept on the whole image, as ``--plan`` takes them."""
        return ",".join(e["step"] for e in self.run if e["kept"])

    def to_record(self) -> dict:
        """The manifest's fields for this image: ``plan`` is what was applied, ``plan_proposed``
        what the search chose on the proxy."""
        return {
            "labels": self.classification.labels,
            "plan": self.applied,
            "plan_proposed": self.plan.spec(),
            "plan_mode": self.plan.mode,
            "plan_details": self.plan.to_dict(),
            "plan_run": self.run,
            "plan_rolled_back": self.plan.rolled_back + [e["step"] for e in self.run if not e["kept"]],
            "generative": any(method_info(e["step"].partition(":")[2]).card.generative for e in self.run if e["kept"]),
            "time_plan": round(self.plan.seconds, 4),
        }


class AdaptiveRestorer:
    """The default restorer of ``irestore restore``: the planner over a pool of registered methods."""

    def __init__(self, planner: Planner, mode: str = "auto", description: str = "", ensemble: int = 1,
                 detail_planner: Planner | None = None) -> None:
        self.planner = planner
        self.detail_planner = detail_planner or planner  # for prompts that ask for detail (generative members first)
        self.mode = mode
        self.explicit = None if mode in MODES else explicit_plan(mode, set(planner.names))
        self.name = f"plan:{mode}" + ("+refine" if planner.settings.refine else "") + (f"{ENSEMBLE}{ensemble}" if ensemble > 1 else "")
        self.description = description or f"adaptive plan ({mode}) over {', '.join(planner.names)}"
        self.fingerprint = hashlib.sha256(
            f"{getattr(planner.classifier, 'fingerprint', '')}|{self.name}|{','.join(planner.names)}|{planner.settings}".encode()
        ).hexdigest()[:16]

    @classmethod
    def create(cls, mode: str = "auto", device: str = "cpu", pool: tuple[str, ...] = DEFAULT_POOL,
               classifier: Classifier | str = DEFAULT_CLASSIFIER, settings: PlannerSettings = PlannerSettings(),
               seed: int = 0, refine: bool = False, ensemble: int = 1) -> AdaptiveRestorer:
        """The default pool's members load lazily (the first plan that uses one loads its weights);
        an explicit plan may also name any other registered blind method. ``refine`` lets the search
        try the diffusion restorer as a final refinement; ``ensemble`` > 1 runs every member as a
        self-ensemble (``--ensemble``)."""
        if refine:
            settings = replace(settings, refine=REFINE_MEMBER)
        if mode not in MODES:
            pool = tuple(dict.fromkeys([*pool, *(step.partition(":")[2] for step in step_texts(mode))]))
        if isinstance(classifier, str):
            classifier = create_classifier("degnet", classifier, device)
        members = tuple(dict.fromkeys([*pool, *GENERATIVE_POOL]))
        loaders = pool_loaders(members, device, seed, ensemble)
        planner = Planner(classifier, loaders, preferences(members), settings, seed)
        detail = Planner(classifier, loaders, preferences(members, generative=True), settings, seed)
        return cls(planner, mode, ensemble=ensemble, detail_planner=detail)

    def planner_for(self, intent: Intent | dict) -> Planner:
        asks_detail = intent.get("detail", False) if isinstance(intent, dict) else intent.detail
        return self.detail_planner if asks_detail else self.planner

    @property
    def device(self):
        return getattr(self.planner.classifier, "device", None)

    def plan(self, image: Tensor, prompt: str = "", prompt_source: str = "none",
             classification: Classification | None = None) -> tuple[Plan, Classification, str]:
        """The plan for one 1x3xHxW image (nothing restored); also the classification and the prompt steps get."""
        if classification is None or classification.backend != getattr(self.planner.classifier, "backend", None):
            classification = self.planner.classifier.classify(image)  # a caption's classification is reused when comparable
        from_user = prompt_source in USER_PROMPT_SOURCES
        intent = parse_intent(prompt, from_user=from_user) if prompt else Intent()
        prompt = prompt if from_user else ""  # a caption steers candidates; steps get their own captions
        if self.explicit is not None:
            plan = Plan(self.mode, list(self.explicit), list(classification.labels), [], intent.to_dict())
        else:
            plan = self.planner_for(intent).plan(image, classification, intent, prompt, self.mode)
        return plan, classification, prompt

    def restore_planned(self, image: Tensor, prompt: str = "", prompt_source: str = "none",
                        settings: RunSettings | None = None, classification: Classification | None = None) -> PlanResult:
        began = time.perf_counter()
        observe.stage("planning")
        plan, classification, prompt = self.plan(image, prompt, prompt_source, classification)
        forced = frozenset(plan.intent.get("force", ())) | (frozenset(s.label for s in plan.steps) if self.explicit else frozenset())
        verify = self.mode == "auto"
        out, run = self.planner_for(plan.intent).run(image, plan, classification, prompt, settings, verify=verify, forced=forced)
        return PlanResult(out.clamp(0, 1).cpu(), plan, classification, prompt, run, time.perf_counter() - began)
