"""Planning restorations per image: which pool members to run, in which order (after M3UNET).

intent (what a prompt asks) → proxy (the views steps are tried on) → search (beam search scored
by the classifier's remaining degradation, with rollback) → adaptive (one image end to end);
pool names the members, methods registers the planner as benchmark methods (``plan:auto``, ...).
"""

from irestore.plan.adaptive import AdaptiveRestorer, PlanResult
from irestore.plan.intent import Intent, parse_intent
from irestore.plan.pool import DEFAULT_POOL
from irestore.plan.search import FIXED_ORDER, MODES, Plan, Planner, PlannerSettings, PlanStep, explicit_plan

__all__ = [
    "DEFAULT_POOL",
    "FIXED_ORDER",
    "MODES",
    "AdaptiveRestorer",
    "Intent",
    "Plan",
    "PlanResult",
    "PlanStep",
    "Planner",
    "PlannerSettings",
    "explicit_plan",
    "parse_intent",
]
