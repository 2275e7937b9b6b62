"""Choosing and ordering restoration steps per image, by evaluating them on a proxy (after M3UNET).

Candidates come from the classifier's labels (and the prompt's intent); each step is one pool
member for one label. A beam search tries every remaining step on the proxy of each kept
sequence, scores the result by the classifier's *remaining degradation* (the sum of its
degradation probabilities over the proxy's views: lower is better, and a step that adds an
artefact pays for it), keeps the ``beam`` best sequences, and rolls back every step whose gain is
not above ``margin`` plus ``change_cost`` times its RMS change to the image (a forced step is kept
anyway): the more a step repaints, the more it must be seen to help. A label the plan set out to
fix counts as present until a member that fixes it has run (:meth:`Planner.hold`). The best sequence found is the plan; with
``refine`` set, a final refinement by the diffusion restorer is tried last and kept only when it
clearly helps (off by default: on the held-out photos the classifier favoured it after FFDNet while
it cost PSNR). So a clean photo, or one whose only candidate steps do not help, goes through untouched.

``fixed`` mode skips the search: one step per detected label, in :data:`FIXED_ORDER` (the reverse
of the camera pipeline), each with the label's preferred member.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import Tensor

from irestore import observe
from irestore.conditioning.captioners import degradation_caption
from irestore.conditioning.classifier import DEGRADATIONS, Classification, Classifier
from irestore.labels import UNDO_ORDER
from irestore.plan.intent import Intent
from irestore.plan.proxy import ProxySettings, proxy_views, view_scales
from irestore.registry import method_info
from irestore.restorers.base import Card, Condition, MethodSkipped, RestorationMethod, RunSettings
from irestore.restorers.ensemble import SelfEnsemble

FIXED_ORDER = UNDO_ORDER  # the order without evaluation: compression, noise, blur, rain, low light, haze, resolution

REFINE = "refine"  # the label of the optional final refinement step
NO_CHANGE = 1e-4  # RMS change below which a step did nothing: it cannot open the way for a next step either
MODES = ("auto", "fixed")


@dataclass(frozen=True)
class PlanStep:
    label: str  # what it fixes (or "refine")
    method: str  # pool member name

    def __str__(self) -> str:
        return f"{self.label}:{self.method}"


@dataclass
class Evaluation:
    """One step tried on the proxy after the steps in ``after``."""

    after: list[str]
    step: str
    score_before: float
    score_after: float
    seconds: float
    outcome: str  # kept | rolled back | forced | failed: ... | skipped: ...
    change: float = 0.0  # RMS change to the views (from the tentative step's parent for a pair)

    @property
    def gain(self) -> float:
        return self.score_before - self.score_after


@dataclass
class _Proxy:
    """What the search tries steps on: the whole image, its views' scales, and each member's estimate
    from the whole image (an exception when the member declined), computed on first use."""

    image: Tensor
    scales: list[float]
    floors: dict[str, float] = field(default_factory=dict)  # see Planner.hold
    estimates: dict[tuple[str, str], dict | None | MethodSkipped] = field(default_factory=dict)


@dataclass
class Plan:
    mode: str
    steps: list[PlanStep]
    detected: list[str]  # the classifier's labels
    candidates: list[str]  # the labels the search considered
    intent: dict
    targets: list[str] = field(default_factory=list)  # the labels the plan set out to fix (see Planner.hold)
    explored: list[str] = field(default_factory=list)  # candidates on trial: probable, not detected (PlannerSettings.explore)
    score_before: float | None = None
    score_after: float | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    seconds: float = 0.0
    provisional: list[int] = field(default_factory=list)  # steps that only help together with the next one
    proxy: _Proxy | None = field(default=None, repr=False, compare=False)  # the search's working state

    @property
    def rolled_back(self) -> list[str]:
        return [f"{' > '.join(e.after + [e.step])}" for e in self.evaluations if e.outcome == "rolled back"]

    def spec(self) -> str:
        """The plan as ``--plan`` takes it (``jpeg:waifu2x-photo,noise:ffdnet-color``); '' for no steps."""
        return ",".join(str(s) for s in self.steps)

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "steps": [str(s) for s in self.steps],
            "detected": self.detected,
            "candidates": self.candidates,
            "explored": self.explored,
            "targets": self.targets,
            "intent": self.intent,
            "score_before": _round(self.score_before),
            "score_after": _round(self.score_after),
            "evaluations": [{**asdict(e), "score_before": _round(e.score_before), "score_after": _round(e.score_after),
                             "change": _round(e.change), "seconds": round(e.seconds, 3)} for e in self.evaluations],
            "rolled_back": self.rolled_back,
            "provisional": self.provisional,
            "seconds": round(self.seconds, 3),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class PlannerSettings:
    beam: int = 2
    margin: float = 0.05  # least drop in remaining degradation for a step to count as a help
    # ... plus this much per unit of the step's RMS change to the image (0-1 scale): the judge is
    # the classifier, and a step that repaints a photo to remove what the classifier barely saw must
    # show more than a hair of gain (the haze specialist took a pale wood texture, read as haze at
    # 0.84, from 58.8 to 10.6 dB, RMS change 0.28, for a gain of 0.06; real haze gains 0.17-0.42
    # at RMS changes 0.10-0.23; 0.3 also rolled back the low-light specialist on a dark JPEG, gain
    # 0.10 at a change of 0.25, that was worth 11.7 dB)
    change_cost: float = 0.15
    guess_factor: float = 2.0  # a guessed step that completes a look-ahead pair must gain this many times as much
    refine_margin: float = 0.1  # the same for the final refinement, which must clearly help (it smooths)
    max_steps: int = 4
    candidate_threshold: float | None = None  # None: the classifier's own (per-label, calibrated) thresholds
    accept: float = 0.1  # a member that leaves its label below this probability ends the search for that label
    preference_penalty: float = 0.15  # cost of using a label's second member instead of its first (see _cost)
    lookahead: bool = True  # a step that does not help alone may stay when the next step makes the pair help
    # on an image already found degraded, a label the classifier gives at least this probability
    # without detecting it is tried too, with its preferred member only, when that member costs at
    # most explore_cost s/MP (card): the calibrated thresholds, set to keep clean photos clean, miss
    # haze under noise or JPEG; trying the cheap step and judging it is how the search finds it.
    # A photo called clean is not explored: the judge would accept a step that removes what it
    # barely saw (None: never explore)
    explore: float | None = 0.15
    explore_cost: float = 10.0
    # a member costing more than this (card s/MP) is tried at most once per label and search depth,
    # on the best state that can take it, and no more in the plan once two tries in a row made the
    # views worse (by more than the margin): the blind deblurrer (80 s/MP, about 10 s per proxy) was
    # tried 6 times on a dark noisy photo, for a false defocus reading, and took 62 s of a 1 MP plan
    # whose restore took 18 s; on the benchmark suites no such third try was ever kept (None: no limit)
    retry_cost: float | None = 60.0
    refine: str | None = None  # final refinement member to try, e.g. "allinone-small" (None: never)
    # the whole-image run uses a member's 8-fold self-ensemble when its card's measured gain reaches
    # this many dB and the 7 extra runs are estimated (card s/MP) to cost at most ensemble_budget_s
    ensemble_min_gain: float = 0.1
    ensemble_budget_s: float = 30.0
    proxy: ProxySettings = ProxySettings()


@dataclass
class _State:
    steps: tuple[PlanStep, ...]
    views: list[Tensor]
    score: float
    probabilities: dict[str, float]  # mean over the views, per degradation label
    anchor: float | None = None  # a tentative state: the score its next step must beat (its parent's)
    anchor_views: list[Tensor] | None = None  # ... and its parent's views, which that step's change is measured from
    provisional: tuple[int, ...] = ()  # indices of steps kept only because the step after them paid off
    released: frozenset[str] = frozenset()  # the labels its steps fixed (Planner.fixes): no longer held at their floors

    @property
    def tentative(self) -> bool:
        return self.anchor is not None


class Planner:
    """Plans per image from a classification, a prompt's intent and a pool of members.

    ``pool`` maps member names to methods (or to zero-argument loaders, called on first use);
    ``preferences`` maps each label to the member names that fix it, best first.
    """

    def __init__(self, classifier: Classifier, pool: dict, preferences: dict[str, tuple[str, ...]],
                 settings: PlannerSettings = PlannerSettings(), seed: int = 0) -> None:
        self.classifier = classifier
        self._pool = pool if isinstance(pool, dict) else dict(pool)  # shared: a member loads once for all planners
        self.preferences = preferences
        self.settings = settings
        self.seed = seed

    @property
    def names(self) -> tuple[str, ...]:
        """The pool's member names."""
        return tuple(self._pool)

    def member(self, name: str) -> RestorationMethod:
        entry = self._pool[name]
        if not isinstance(entry, RestorationMethod):
            entry = self._pool[name] = entry()
        return entry

    def members_for(self, label: str) -> tuple[str, ...]:
        return tuple(m for m in self.preferences.get(label, ()) if m in self._pool)

    def card(self, name: str) -> Card:
        """A member's card, without loading its weights when it has not been used yet."""
        entry = self._pool[name]
        return entry.card if isinstance(entry, RestorationMethod) else method_info(name).card

    def covered(self, steps) -> set[str]:
        """The labels ``steps`` have dealt with: their own, and every label of a one-pass member among
        them (the blind deblurrer removes motion and defocus blur alike, so it runs once)."""
        return {s.label for s in steps} | {label for s in steps if self.card(s.method).one_pass for label in self.card(s.method).fixes}

    def fixed_steps(self, labels) -> list[PlanStep]:
        """The plan without search: ``labels`` in :data:`FIXED_ORDER`, each with its preferred member."""
        steps: list[PlanStep] = []
        for label in FIXED_ORDER:
            if label in labels and self.members_for(label) and label not in self.covered(steps):
                steps.append(PlanStep(label, self.members_for(label)[0]))
        return steps

    # -- scoring ---------------------------------------------------------------------------

    def assess(self, views: list[Tensor]) -> tuple[float, dict[str, float]]:
        """The remaining degradation of a set of views (mean over views of the summed degradation
        probabilities; 0 = the classifier sees nothing wrong) and the mean probability per label."""
        means = dict.fromkeys(DEGRADATIONS, 0.0)
        for view in views:
            probabilities = self._judge(view).probabilities
            for d in DEGRADATIONS:
                means[d] += probabilities[d] / len(views)
        return _remaining(means), means

    def hold(self, probabilities: dict[str, float], floors: dict[str, float], released: Iterable[str]) -> dict[str, float]:
        """``probabilities`` with each target label (``floors``: its probability before any step) kept at
        least at its floor until a step that fixes it has run (``released``: the labels such steps
        fixed, :meth:`fixes`). A step removes only what it is built to remove, whatever the judge
        reads: denoising a dark photo took its low-light probability from 0.98 to 0.17 and kept the
        brightening step from being tried, and dehazing a dark photo read as less dark. A step may
        still add any degradation, and pays for it."""
        released = set(released)
        return {d: max(p, floors[d]) if d in floors and d not in released else p for d, p in probabilities.items()}

    def fixes(self, step: PlanStep, before: list[Tensor], after: list[Tensor]) -> frozenset[str]:
        """The labels ``step`` fixed going from the views ``before`` to ``after``: its own and its card's,
        less those it can be seen not to have done. Low light is fixed only by a step that brightens
        (:data:`BRIGHTER`): the judge reads low light mostly through sensor noise, and took a dark
        1 MP photo that the diffusion restorer had only denoised (mean level 0.138 -> 0.142) for
        fixed, where the low-light specialist brightens it to 0.58."""
        labels = {step.label, *self.card(step.method).fixes}
        if "lowlight" in labels and not _brightened(before, after):
            labels.discard("lowlight")
        return frozenset(labels)

    def needed(self, change: float, margin: float | None = None) -> float:
        """The least gain a step that changed the image by ``change`` (RMS) must show to count as a help."""
        return (self.settings.margin if margin is None else margin) + self.settings.change_cost * change

    def _judge(self, image: Tensor) -> Classification:
        """How degraded a (restored) image still looks. A classifier with a ``judge`` (the shipped
        DegNet: its per-view probabilities without the calibrated image-level head) judges with
        it: the head, trained on degraded photos, also reads a restorer's own artefacts as
        degradation and would roll back steps that clearly help (measured in the README)."""
        judge = getattr(self.classifier, "judge", None)
        return judge(image) if judge is not None else self.classifier.classify(image)

    def _judge_thresholds(self, classification: Classification) -> dict[str, float]:
        """Thresholds for what the judge sees after a step: its own when it is not the classifier."""
        if getattr(self.classifier, "judge", None) is None:
            return self._thresholds(classification)
        threshold = self.settings.candidate_threshold
        return dict.fromkeys(DEGRADATIONS, 0.5 if threshold is None else threshold)

    def _thresholds(self, classification: Classification) -> dict[str, float]:
        threshold = self.settings.candidate_threshold
        return {d: classification.threshold_of(d) if threshold is None else threshold for d in DEGRADATIONS}

    # -- planning --------------------------------------------------------------------------

    def candidates(self, probabilities: dict[str, float], thresholds: dict[str, float], intent: Intent,
                   also: Iterable[str] = ()) -> list[str]:
        """Labels to plan steps for: those detected (each at its threshold), ``also``, and those the
        prompt names. A degradation the classifier names only as uncertain is planned for only when
        its clean probability says the image is not clean either (``also``): otherwise the planner,
        judging steps by the same classifier, would accept a denoiser on a clean photo because the
        noise it barely saw is gone afterwards."""
        found = {d for d in DEGRADATIONS if probabilities.get(d, 0.0) >= thresholds[d]} | (set(also) & set(DEGRADATIONS))
        wanted = set(intent.force | intent.add)
        labels = wanted if intent.only else found | wanted
        return [label for label in FIXED_ORDER if label in labels - intent.forbid and self.members_for(label)]

    def explorable(self, probabilities: dict[str, float], candidates: list[str], intent: Intent) -> list[str]:
        """Labels to try on trial, when there are ``candidates`` already: at least ``explore`` probable,
        not candidates themselves, not forbidden, and with a preferred member cheap enough to try on a guess."""
        floor = self.settings.explore
        if floor is None or intent.only or not candidates:
            return []
        def cheap(label: str) -> bool:
            members = self.members_for(label)
            return bool(members) and (self.card(members[0]).s_per_mp or 0.0) <= self.settings.explore_cost

        return [label for label in FIXED_ORDER if label not in candidates and label not in intent.forbid
                and probabilities.get(label, 0.0) >= floor and cheap(label)]

    @torch.inference_mode()
    def plan(self, image: Tensor, classification: Classification, intent: Intent = Intent(),
             prompt: str = "", mode: str = "auto") -> Plan:
        started = time.perf_counter()
        doubted = classification.uncertain[:1] if classification.doubts_clean and self.settings.candidate_threshold is None else []
        candidates = self.candidates(classification.probabilities, self._thresholds(classification), intent, doubted)
        plan = Plan(mode, [], list(classification.labels), candidates, intent.to_dict())
        plan.targets = list(candidates)
        if mode not in MODES:
            raise ValueError(f"unknown plan mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "fixed":
            plan.steps = self.fixed_steps(candidates)
        else:
            plan.explored = self.explorable(classification.probabilities, candidates, intent)
            plan.candidates = [label for label in FIXED_ORDER if label in {*candidates, *plan.explored}]
            plan.targets = list(plan.candidates)
            if plan.candidates:  # with nothing detected, probable or asked for, the image goes through untouched
                self._search(plan, image, classification, intent, prompt)
        plan.seconds = time.perf_counter() - started
        return plan

    def _search(self, plan: Plan, image: Tensor, classification: Classification, intent: Intent, prompt: str) -> None:
        views = proxy_views(image, self.settings.proxy)
        root = _State((), views, *self.assess(views))
        plan.proxy = _Proxy(image, view_scales(image, views), {d: root.probabilities[d] for d in plan.targets})
        plan.score_before = root.score
        best, beam = root, [root]
        worse: dict[PlanStep, int] = {}  # costly steps: how many tries in a row made the views worse
        for _ in range(self.settings.max_steps):
            once: set[PlanStep] = set()  # the costly steps tried at this depth (see PlannerSettings.retry_cost)
            children = [child for state in beam for child in self._expand(state, plan, classification, intent, prompt, once, worse)]
            if not children:
                break
            children.sort(key=self._cost)
            valid = [c for c in children if not c.tentative]
            beam = valid[: self.settings.beam] + [c for c in children if c.tentative][:1]
            best = min([best, *valid[: self.settings.beam]], key=lambda s: self._rank(s, intent))
        best = self._refine(best, plan, classification, intent, prompt)
        plan.steps, plan.score_after, plan.provisional = list(best.steps), best.score, list(best.provisional)
        plan.proxy = None  # the whole image and the estimates are not needed past the search
        chosen = [str(s) for s in best.steps]
        for e in plan.evaluations:  # a look-ahead that did not end in the plan was a rollback after all
            if e.outcome == "tentative" and (e.after + [e.step]) != chosen[: len(e.after) + 1]:
                e.outcome = "rolled back"

    def _rank(self, state: _State, intent: Intent) -> tuple[int, float]:
        """Sequences that hold every forced label first, then by cost."""
        missing = len(intent.force - {s.label for s in state.steps})
        return missing, self._cost(state)

    def _cost(self, state: _State) -> float:
        """Remaining degradation, plus a penalty per step for each place its member stands below the
        label's preferred one: the classifier sees whether a degradation is gone, not how faithfully
        (the dark channel prior removes haze more visibly than the diffusion restorer, at a lower PSNR)."""
        demotion = sum(self.members_for(s.label).index(s.method) for s in state.steps if s.method in self.members_for(s.label))
        return state.score + self.settings.preference_penalty * demotion

    def _open(self, state: _State, plan: Plan, classification: Classification, intent: Intent) -> list[str]:
        """Labels still to try after ``state``: the plan's candidates, and what the classifier now sees in
        the state's views (haze under heavy noise often shows only once the noise is gone)."""
        seen = self.candidates(state.probabilities, self._judge_thresholds(classification), intent)
        for label in seen:
            if label not in plan.candidates:
                plan.candidates.append(label)
        return [label for label in FIXED_ORDER if label in {*plan.candidates, *seen} - self.covered(state.steps)]

    def _expand(self, state: _State, plan: Plan, classification: Classification, intent: Intent, prompt: str,
                once: set[PlanStep], worse: dict[PlanStep, int]) -> list[_State]:
        """The children of ``state`` (the beam is expanded best state first). A costly step is not tried
        here when it is in ``once`` (tried at this depth already) or ``worse`` says its last two tries
        made the views worse."""
        children = []
        for label in self._open(state, plan, classification, intent):
            members = self.members_for(label)
            for name in members[:1] if label in plan.explored else members:  # a guess gets the cheap member only
                step = PlanStep(label, name)
                if (step in once or worse.get(step, 0) >= 2) and label not in intent.force:
                    continue
                child = self._try(state, step, plan, classification, prompt, forced=label in intent.force)
                record = plan.evaluations[-1]
                if self._costly(name) and not record.outcome.startswith("skipped"):
                    once.add(step)
                    worsened = record.score_after > record.score_before + self.settings.margin
                    worse[step] = worse.get(step, 0) + 1 if worsened else 0
                if child is not None:
                    children.append(child)
                    if not child.tentative and child.probabilities[label] < self.settings.accept:
                        break  # fixed: the label's other (usually costlier) members need not be tried
                    # (a tentative step has not helped yet, so the label's other members are still tried)
        return children

    def _costly(self, name: str) -> bool:
        limit, cost = self.settings.retry_cost, self.card(name).s_per_mp
        return limit is not None and cost is not None and cost > limit

    def _refine(self, state: _State, plan: Plan, classification: Classification, intent: Intent, prompt: str) -> _State:
        name = self.settings.refine
        if not state.steps or name is None or name not in self._pool or any(s.method == name for s in state.steps):
            return state
        child = self._try(state, PlanStep(REFINE, name), plan, classification, prompt, forced=False,
                          margin=self.settings.refine_margin)
        return child if child is not None else state

    def _try(self, state: _State, step: PlanStep, plan: Plan, classification: Classification, prompt: str,
             forced: bool, margin: float | None = None) -> _State | None:
        began = time.perf_counter()
        record = Evaluation([str(s) for s in state.steps], str(step), state.score, state.score, 0.0, "")
        plan.evaluations.append(record)
        try:
            member, condition = self.member(step.method), self.condition(step, classification, prompt, step.label in plan.explored)
            views = [member.restore(v, c, RunSettings(tile=None)) for v, c in self._view_conditions(step, member, condition, plan, state)]
        except MethodSkipped as skipped:
            record.outcome = f"skipped: {skipped}"
            return None
        except Exception as error:  # one failing member must not end the plan
            record.outcome = f"failed: {type(error).__name__}: {error}"
            return None
        steps = state.steps + (step,)
        released = state.released | self.fixes(step, state.views, views)
        _, probabilities = self.assess(views)
        if plan.proxy is not None:
            probabilities = self.hold(probabilities, plan.proxy.floors, released)
        record.score_after = _remaining(probabilities)
        record.seconds = time.perf_counter() - began
        before = state.views
        if state.tentative:  # the pair must beat the state before the tentative step
            record.score_before, before = state.anchor, state.anchor_views
        record.change = _change(before, views)
        # a guessed (explored) step never starts a pair, and completes one only with guess_factor
        # times the gain otherwise needed: JPEG removal, then haze the classifier half-saw in a
        # mountain view's natural distance, gain 0.10, took the view from 27.96 to 20.71 dB;
        # denoising, then rain that showed only once the noise was gone, gain 0.56, was worth 7.8 dB
        guess = step.label in plan.explored
        need = self.needed(record.change, margin)
        helped = record.gain > need
        if helped and state.tentative:
            helped = (not guess or record.gain > self.settings.guess_factor * need) \
                and not self._alone_is_better(plan, state.steps[:-1], step, record.score_after)
        if helped or forced:
            record.outcome = "kept" if helped else "forced"
            return _State(steps, views, record.score_after, probabilities, provisional=state.provisional, released=released)
        if self.settings.lookahead and not state.tentative and step.label != REFINE and not guess and record.change > NO_CHANGE:
            record.outcome = "tentative"
            return _State(steps, views, record.score_after, probabilities, anchor=state.score, anchor_views=state.views,
                          provisional=state.provisional + (len(state.steps),), released=released)
        record.outcome = "rolled back"
        return None

    def _alone_is_better(self, plan: Plan, anchor: tuple[PlanStep, ...], step: PlanStep, pair_score: float) -> bool:
        """Whether ``step`` tried straight after ``anchor`` (without the tentative step between) came
        within ``margin`` of the pair: then the pair's gain is the follow-up's, and the tentative step
        only adds its risk (deblurring a dark photo before brightening it: 22.1 -> 11.3 dB)."""
        after = [str(s) for s in anchor]
        return any(e.after == after and e.step == str(step) and e.outcome in ("kept", "forced", "tentative", "rolled back")
                   and e.score_after - pair_score <= self.settings.margin for e in plan.evaluations)

    def _view_conditions(self, step: PlanStep, member: RestorationMethod, condition: Condition, plan: Plan,
                         state: _State) -> list[tuple[Tensor, Condition]]:
        """Each view with the condition it is restored under: the member's estimate from the whole image
        (made once per plan) and the view's scale."""
        if plan.proxy is None:
            return [(v, condition) for v in state.views]
        key = (step.method, step.label)
        if key not in plan.proxy.estimates:
            try:
                plan.proxy.estimates[key] = member.estimate(plan.proxy.image, condition)
            except MethodSkipped as skipped:
                plan.proxy.estimates[key] = skipped
        estimate = plan.proxy.estimates[key]
        if isinstance(estimate, MethodSkipped):
            raise estimate
        if estimate is None:
            return [(v, condition) for v in state.views]
        return [(v, replace(condition, estimate=estimate, view_scale=s)) for v, s in zip(state.views, plan.proxy.scales)]

    def condition(self, step: PlanStep, classification: Classification, prompt: str, guessed: bool = False) -> Condition:
        """What a step's member is told: its label, the classifier's severities, and the user's prompt
        or else a caption of the step's own degradation ("a photo with heavy rain streaks"): the
        diffusion restorer is one model for every label, and the prompt is what makes its deraining
        step differ from its dehazing step (the refinement gets the caption of everything detected).
        A ``guessed`` (explored) label is worded mild: undetected, it is at most light, and the
        text-conditioned specialists follow the wording (a pale wood texture taken for "heavy haze"
        came out at 13.2 dB from the dehazing specialist, at 22.0 dB told "mild haze")."""
        labels = tuple(classification.labels) if step.label == REFINE else (step.label,)
        text = prompt or degradation_caption(classification, None if step.label == REFINE else [step.label], mild=guessed)
        return Condition(labels, dict(classification.severities), text, seed=self.seed)

    # -- running ---------------------------------------------------------------------------

    @torch.inference_mode()
    def run(self, image: Tensor, plan: Plan, classification: Classification, prompt: str = "",
            settings: RunSettings | None = None, verify: bool = True, forced: frozenset[str] = frozenset()) -> tuple[Tensor, list[dict]]:
        """Run the plan's steps on the whole image. With ``verify``, the classifier checks the whole image
        after each step by the proxy's rule: a step whose drop in remaining degradation is not above
        what :meth:`needed` asks for its change is rolled back (unless forced), and the label's next-best member on the proxy is
        tried in its place. A provisional step (one the search kept only for the step after it) is
        judged together with that next step, and rolled back with it when the pair does not help."""
        current = anchor_image = image
        anchor = _remaining(classification.probabilities) if verify and plan.steps else None
        floors = {d: classification.probabilities[d] for d in plan.targets if d in classification.probabilities}
        done, pending, kept = [], [], []  # kept: the labels each kept step fixed
        for i, step in enumerate(plan.steps):
            provisional = anchor is not None and i in plan.provisional and i + 1 < len(plan.steps)
            attempts = [step] if anchor is None or provisional else [step, *(PlanStep(step.label, m) for m in self.alternatives(plan, step))]
            for attempt in attempts:
                began = time.perf_counter()
                observe.stage(str(attempt))
                method, count = self.runner(attempt.method, current)
                try:
                    out = method.restore(current, self.condition(attempt, classification, prompt, attempt.label in plan.explored), settings)
                except MethodSkipped as skipped:  # e.g. no lens disk in the whole photo's spectrum: the step goes
                    done.append({"step": str(attempt), "seconds": round(time.perf_counter() - began, 3), "kept": False,
                                 "skipped": str(skipped)})
                    continue
                entry = {"step": str(attempt), "seconds": round(time.perf_counter() - began, 3), "kept": True}
                if count > 1:
                    entry["ensemble"] = count
                done.append(entry)
                if anchor is None:
                    current = out
                    break
                fixed = self.fixes(attempt, [current], [out])
                released = fixed.union(*kept)
                after = _remaining(self.hold(self._judge(out).probabilities, floors, released))
                change = _change([anchor_image], [out])
                entry |= {"score_before": round(anchor, 4), "score_after": round(after, 4), "change": round(change, 4)}
                if anchor - after > self.needed(change) or attempt.label in forced:
                    current = anchor_image = out
                    anchor, pending = after, []
                    kept.append(fixed)
                    break
                if provisional:
                    entry["provisional"] = True
                    pending.append(entry)
                    current = out
                    kept.append(fixed)
                    break
                entry["kept"] = False
                for earlier in pending:  # the pair did not help: the provisional step goes too
                    earlier["kept"] = False
                kept = kept[: len(kept) - len(pending)]
                pending, current = [], anchor_image
        for earlier in pending:
            earlier["kept"] = False
        return (anchor_image if pending else current), done

    def runner(self, name: str, image: Tensor) -> tuple[RestorationMethod, int]:
        """The member as the whole-image run uses it, and its self-ensemble size (1: none)."""
        member = self.member(name)
        count = self.ensemble_size(member.card, image)
        return (SelfEnsemble(member, count) if count > 1 else member), count

    def ensemble_size(self, card, image: Tensor) -> int:
        """8 where the self-ensemble pays at an acceptable cost (see PlannerSettings), else 1."""
        gain, cost = card.ensemble_gain, card.s_per_mp
        if gain is None or cost is None or gain < self.settings.ensemble_min_gain:
            return 1
        extra = cost * 7 * image.shape[-2] * image.shape[-1] / 1e6
        return 8 if extra <= self.settings.ensemble_budget_s else 1

    def alternatives(self, plan: Plan, step: PlanStep) -> list[str]:
        """Other members that helped with ``step.label`` on the proxy, in preference order."""
        helped = {e.step.partition(":")[2] for e in plan.evaluations
                  if e.step.startswith(f"{step.label}:") and e.outcome in ("kept", "forced")}
        return [m for m in self.members_for(step.label) if m in helped and m != step.method]

    def classifier_score(self, image: Tensor) -> float:
        return _remaining(self._judge(image).probabilities)


CHANGE_POOL = 8  # the change cost is measured on 8x8 block means of the views
BRIGHTER = 0.02  # least rise of the mean level (0-1) for a step to count as fixing low light


def _brightened(before: list[Tensor], after: list[Tensor]) -> bool:
    """Whether the views' mean level rose by at least :data:`BRIGHTER`."""
    return float(sum(a.mean() for a in after)) / len(after) - float(sum(b.mean() for b in before)) / len(before) >= BRIGHTER


def _change(before: list[Tensor], after: list[Tensor]) -> float:
    """Mean over views of the RMS difference of their 8x8 block means (0-1 scale); views that changed
    size count as unchanged. The block means keep what repaints a photo (tone, colour, shapes) and
    drop the pixel-level part a denoiser or deblocker removes: FFDNet's change on a noisy σ 25 photo
    is 0.07 pixel by pixel but 0.01 in block means, while a dehazing step's repainting of a clean
    texture (0.28) stays."""
    diffs = [float((_block_means(a) - _block_means(b)).pow(2).mean().sqrt()) for a, b in zip(before, after) if a.shape == b.shape]
    return sum(diffs) / len(diffs) if diffs else 0.0


def _block_means(view: Tensor) -> Tensor:
    size = min(CHANGE_POOL, view.shape[-2], view.shape[-1])
    return torch.nn.functional.avg_pool2d(view.float(), size, ceil_mode=True)


def _remaining(probabilities: dict[str, float]) -> float:
    """The remaining degradation of one classification: its degradation probabilities summed."""
    return float(sum(probabilities[d] for d in DEGRADATIONS))


def step_texts(spec: str) -> list[str]:
    """The ``LABEL:METHOD`` items of an explicit plan (joined by ``,`` or ``+``)."""
    return [part.strip() for part in re.split(r"[,+]", spec) if part.strip()]


def explicit_plan(spec: str, known: set[str]) -> list[PlanStep]:
    """``jpeg:waifu2x-photo,noise:ffdnet-color`` -> steps; ValueError naming a bad label or member.
    Steps may also be joined by ``+`` (``lowlight:gamma+noise:ffdnet-color``), so that a plan can be
    one item of a comma-separated list (``irestore benchmark --methods``)."""
    steps = []
    for part in step_texts(spec):
        label, sep, name = part.partition(":")
        if not sep or not name:
            raise ValueError(f"plan step {part!r}: expected LABEL:METHOD, e.g. noise:ffdnet-color")
        if label not in (*FIXED_ORDER, REFINE):
            raise ValueError(f"plan step {part!r}: unknown label {label!r}; choose one of {', '.join((*FIXED_ORDER, REFINE))}")
        if name not in known:
            raise ValueError(f"plan step {part!r}: unknown method {name!r}; known: {', '.join(sorted(known))}")
        steps.append(PlanStep(label, name))
    if not steps:
        raise ValueError("empty plan: give LABEL:METHOD steps separated by commas")
    return steps

