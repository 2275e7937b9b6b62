"""The planner as restoration methods for ``irestore benchmark`` (registered on import).

- ``plan:auto``   the default of ``irestore restore``: classify, search on the proxy, roll back; blind
  (its prompt is the classifier's caption, as with ``--prompt-from-caption``); ``plan:auto+refine``
  also tries the diffusion restorer as a final refinement (``--refine``);
- ``plan:fixed``  the detected labels in the fixed order with each label's preferred member;
- ``plan:oracle`` an upper bound: the *true* labels, every order and every member choice run on the
  whole image, the best by PSNR against the ground truth kept. Its row details list the PSNR of every
  order, from which the report takes the best fixed order of each mixture;
- ``plan:LABEL:METHOD,...`` an explicit plan.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

from irestore.plan.adaptive import AdaptiveRestorer
from irestore.plan.pool import DEFAULT_POOL
from irestore.plan.search import Plan, PlanStep
from irestore.registry import register_restorer
from irestore.restorers.base import Card, Condition, RestorationMethod, RunSettings
from irestore.restorers.catalogue import MethodInfo

PREFIX = "plan:"
REFINE_SUFFIX = "+refine"  # plan:auto+refine: the search may end with a diffusion refinement
ORACLE_LIMIT = 48  # most plans the oracle runs per image


class PlanMethod(RestorationMethod):
    """``plan:auto`` / ``plan:fixed`` / ``plan:STEPS`` behind the restoration-method contract."""

    def __init__(self, spec: str, device: str = "cpu", seed: int = 0) -> None:
        mode, refine = spec[len(PREFIX):], spec.endswith(REFINE_SUFFIX)
        self.adaptive = AdaptiveRestorer.create(mode.removesuffix(REFINE_SUFFIX), device=device, seed=seed, refine=refine)
        self.card = _card(spec)
        self.last_details: dict | None = None

    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        out = []
        for single in image.split(1):
            result = self.adaptive.restore_planned(single, settings=settings)
            self.last_details = result.to_record()
            out.append(result.image)
        return torch.cat(out)


class OraclePlan(RestorationMethod):
    """Every order of the true labels, with every choice of member, judged against the ground truth."""

    def __init__(self, device: str = "cpu", seed: int = 0) -> None:
        self.adaptive = AdaptiveRestorer.create("auto", device=device, seed=seed)
        self.card = _card(f"{PREFIX}oracle")
        self.last_details: dict | None = None

    def plans(self, labels: tuple[str, ...]) -> list[list[PlanStep]]:
        planner = self.adaptive.planner
        labels = [label for label in labels if planner.members_for(label)]
        plans = []
        for order in itertools.permutations(labels):
            for members in itertools.product(*(planner.members_for(label) for label in order)):
                plans.append([PlanStep(label, name) for label, name in zip(order, members, strict=True)])
        return plans[:ORACLE_LIMIT] or [[]]

    def camera_order(self, labels: tuple[str, ...]) -> str:
        """The plan without search for the true labels: the fixed order, each label's preferred member."""
        return ",".join(map(str, self.adaptive.planner.fixed_steps(labels)))

    def restore(self, image: Tensor, condition: Condition, settings: RunSettings | None = None) -> Tensor:
        if condition.reference is None:
            raise ValueError("plan:oracle needs the ground truth (benchmark only)")
        return torch.cat([self._best(single, condition, settings) for single in image.split(1)])

    def _best(self, image: Tensor, condition: Condition, settings: RunSettings | None) -> Tensor:
        from irestore.evaluate.metrics import psnr
        from irestore.io import tensor_to_rgb

        planner = self.adaptive.planner
        classification = planner.classifier.classify(image)
        tried, best, best_score = {}, image, -np.inf
        for steps in self.plans(condition.labels):
            plan = Plan("oracle", steps, list(classification.labels), list(condition.labels), {})
            current, _ = planner.run(image, plan, classification, "", settings, verify=False)
            score = psnr(tensor_to_rgb(current), condition.reference)
            tried[",".join(map(str, steps))] = round(float(score), 4)
            if score > best_score:
                best, best_score = current, score
        self.last_details = {"plan": max(tried, key=tried.get), "orders": tried, "camera_order": self.camera_order(condition.labels)}
        return best.clamp(0, 1).cpu()


def _card(spec: str) -> Card:
    mode = spec[len(PREFIX):].removesuffix(REFINE_SUFFIX)
    summary = {
        "auto": "adaptive plan: classifier, proxy search with rollback and look-ahead (the restore default)",
        "fixed": "detected labels in the fixed order (jpeg, noise, blur, rain, low light, haze), preferred members",
        "oracle": "upper bound: true labels, every order and member choice, best by PSNR against the ground truth",
    }.get(mode, f"explicit plan {mode}")
    return Card(spec, summary, any_input=True, oracle=mode == "oracle",
                parameters="true labels and the ground truth" if mode == "oracle" else "nothing (blind)",
                weights=f"its members' ({', '.join(DEFAULT_POOL)})")


def _build(spec: str, device: str, seed: int) -> RestorationMethod:
    if spec == f"{PREFIX}oracle":
        return OraclePlan(device, seed)
    return PlanMethod(spec, device, seed)


register_restorer(MethodInfo(PREFIX, Card(f"{PREFIX}auto|fixed|oracle|STEPS", "the adaptive planner over the pool",
                                          any_input=True), _build, prefix=True))
