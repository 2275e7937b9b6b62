"""One registry for every named thing irestore builds, with one pattern per kind:
``register_<kind>`` (declare an entry), ``create_<kind>`` / ``<kind>_config`` (build or fetch it by
name) and ``list_<kind>s`` (the names).

Kinds: networks (restorer network configs) and their checkpoint families, classifier networks
(DegNet configs), samplers, text encoders, captioners, classifier backends, restoration methods
and weights. Each kind names its *providers*: the modules that declare its entries. A registry
imports its providers before the first lookup, so what a lookup finds never depends on what
happened to be imported first. This module imports nothing of irestore itself (providers are
named, not imported, here), so every stage can use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, declared by provider modules (imported on first use)."""

    def __init__(self, kind: str, providers: tuple[str, ...]) -> None:
        self.kind, self.providers = kind, providers
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._resolver: Callable[[str], T] | None = None
        self._loading = False
        self._loaded = False

    def register(self, name: str, entry: T) -> None:
        """Add an entry; registering the same entry again is a no-op, another under a taken name an error."""
        known = self._entries.get(name)
        if known is not None and known is not entry and known != entry:
            raise ValueError(f"{self.kind} {name!r} is already registered as something else")
        self._entries[name] = entry

    def alias(self, old: str, name: str) -> None:
        """Another name for an entry (an earlier name, a short form)."""
        self._aliases[old] = name

    def canonical(self, name: str) -> str:
        self.load()
        return self._aliases.get(name, name)

    def set_resolver(self, resolver: Callable[[str], T]) -> None:
        """For kinds whose lookups are specs rather than names (``irestore:MODEL@STEPS``,
        ``NAME+ensemble4``): :meth:`resolve` hands the spec to ``resolver``."""
        self._resolver = resolver

    def resolve(self, spec: str) -> T:
        """The entry for a name or spec: the resolver's answer where one is set, else :meth:`get`."""
        self.load()
        return self._resolver(spec) if self._resolver is not None else self.get(spec)

    def load(self) -> None:
        """Import the providers once (a provider's own lookups during its import see what is declared so far)."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self.providers:
                importlib.import_module(module)
            self._loaded = True
        finally:
            self._loading = False

    def get(self, name: str) -> T:
        """The entry of that name; the providers are imported first unless it is already known."""
        name = self._aliases.get(name, name)
        if name not in self._entries:
            self.load()
            name = self._aliases.get(name, name)
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {', '.join(self._entries)}")
        return self._entries[name]

    def find(self, name: str, load: bool = True) -> T | None:
        """The entry of that name or None; with ``load=False`` only among those declared so far."""
        name = self._aliases.get(name, name)
        if name not in self._entries and load:
            self.load()
            name = self._aliases.get(name, name)
        return self._entries.get(name)

    def names(self) -> list[str]:
        """Names in registration order."""
        self.load()
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self.load()
        return iter(list(self._entries.items()))

    @contextmanager
    def scoped(self) -> Iterator[Registry[T]]:
        """Entries registered inside the block are gone after it (tests, trying a plug-in)."""
        self.load()
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries = saved

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries


NETWORKS: Registry[Any] = Registry("network", ("irestore.models.catalogue",))
NETWORK_FAMILIES: Registry[tuple[type, type]] = Registry("network type", ("irestore.models.catalogue",))
CLASSIFIER_NETWORKS: Registry[Any] = Registry("classifier network", ("irestore.models.catalogue",))
SAMPLERS: Registry[Callable[..., Any]] = Registry("sampler", ("irestore.diffusion.sampling",))
TEXT_ENCODERS: Registry[Callable[..., Any]] = Registry("text encoder", ("irestore.conditioning.text",))
CAPTIONERS: Registry[Callable[..., Any]] = Registry("captioner", ("irestore.conditioning.captioners",))
CLASSIFIERS: Registry[Callable[..., Any]] = Registry("classifier backend", ("irestore.conditioning.classifier",))
RESTORERS: Registry[Any] = Registry("restoration method", ("irestore.restorers.catalogue", "irestore.plan.methods"))
# each module that loads weights declares them next to the code that loads them
WEIGHTS: Registry[Any] = Registry("weights", (
    "irestore.weights.sources", "irestore.pipeline", "irestore.conditioning.classifier", "irestore.conditioning.open_clip_models",
    "irestore.evaluate.metrics", "irestore.restorers.ported", "irestore.evaluate.brisque",
))
_DEFAULT_STEPS: dict[str, int] = {}


# ------------------------------------------------------------------ restorer networks


def register_network(name: str, config: Any) -> None:
    NETWORKS.register(name, config)


def register_network_family(type_name: str, config_class: type, network_class: type) -> None:
    """A network class a restorer checkpoint can hold, by its checkpoint ``network.type``."""
    NETWORK_FAMILIES.register(type_name, (config_class, network_class))


def list_networks() -> list[str]:
    return sorted(NETWORKS.names())


def network_config(name: str, **overrides) -> Any:
    """A registered network's config, with fields replaced by ``overrides``."""
    return replace(NETWORKS.get(name), **overrides)


def network_type(config: Any) -> str:
    """The checkpoint type name of a network config."""
    for name, (config_class, _) in NETWORK_FAMILIES.items():
        if isinstance(config, config_class):
            return name
    raise KeyError(f"no network type builds a {type(config).__name__}")


def network_family(name: str) -> type | None:
    """The network class a registered name builds (None for an unknown name)."""
    try:
        return NETWORK_FAMILIES.get(network_type(network_config(name)))[1]
    except KeyError:
        return None


def build_network(config: Any) -> Any:
    return NETWORK_FAMILIES.get(network_type(config))[1](config)


def create_network(name: str, **overrides) -> Any:
    """Build a registered network, e.g. create_network('erunet-small', text_dim=384)."""
    return build_network(network_config(name, **overrides))


# ------------------------------------------------------------------ classifier networks


def register_classifier_network(name: str, config: Any) -> None:
    CLASSIFIER_NETWORKS.register(name, config)


def list_classifier_networks() -> list[str]:
    return CLASSIFIER_NETWORKS.names()


def classifier_network_config(name: str) -> Any:
    return CLASSIFIER_NETWORKS.get(name)


# ------------------------------------------------------------------ samplers


def register_sampler(name: str, sampler: Callable[..., Any], default_steps: int) -> None:
    SAMPLERS.register(name, sampler)
    _DEFAULT_STEPS[name] = default_steps


def list_samplers() -> list[str]:
    return SAMPLERS.names()


def create_sampler(name: str) -> Callable[..., Any]:
    """The sampling function of that name (a sampler is stateless: the function itself)."""
    try:
        return SAMPLERS.get(name)
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(list_samplers())}") from None


def default_steps(name: str) -> int:
    create_sampler(name)
    return _DEFAULT_STEPS[name]


# ------------------------------------------------------------------ text encoders


def register_text_encoder(family: str, factory: Callable[..., Any]) -> None:
    """``factory()`` or ``factory(argument)`` for ``family:argument``."""
    TEXT_ENCODERS.register(family, factory)


def list_text_encoders() -> list[str]:
    return sorted(TEXT_ENCODERS.names())


def create_text_encoder(name: str) -> Any:
    """``minilm``, ``clip`` or ``clip:SPEC``: the family, and an argument for its factory."""
    family, _, argument = name.partition(":")
    if family not in TEXT_ENCODERS:
        raise KeyError(f"unknown text encoder {name!r}; registered: {', '.join(list_text_encoders())}")
    factory = TEXT_ENCODERS.get(family)
    return factory(argument) if argument else factory()


# ------------------------------------------------------------------ captioners


def register_captioner(name: str, factory: Callable[..., Any]) -> None:
    CAPTIONERS.register(name, factory)


def list_captioners() -> list[str]:
    return CAPTIONERS.names()


def create_captioner(name: str, **options) -> Any:
    """A registered captioner; ``options`` go to its factory (see each class's ``create``)."""
    if name not in CAPTIONERS:
        raise KeyError(f"unknown captioner {name!r}; choose one of {', '.join(list_captioners())}")
    return CAPTIONERS.get(name)(**options)


# ------------------------------------------------------------------ classifier backends


def register_classifier(backend: str, factory: Callable[..., Any]) -> None:
    """``factory(model, device, offline, threshold=...)`` builds a degradation classifier."""
    CLASSIFIERS.register(backend, factory)


def list_classifiers() -> list[str]:
    return CLASSIFIERS.names()


def create_classifier(backend: str = "degnet", model=None, device="cpu", threshold: float | None = None,
                      offline: bool | None = None) -> Any:
    """A degradation classifier: ``degnet`` (a DegNet checkpoint or store name, default
    ``degnet-default``) or ``clip`` (zero-shot, any open_clip CLIP spec, default ``clip-b32``)."""
    if backend not in CLASSIFIERS:
        raise ValueError(f"unknown classifier backend {backend!r}; choose one of {', '.join(list_classifiers())}")
    return CLASSIFIERS.get(backend)(model, device, offline, threshold=threshold)


# ------------------------------------------------------------------ restoration methods


def register_restorer(info: Any) -> None:
    """A method's :class:`~irestore.restorers.catalogue.MethodInfo` (its name may be a spec prefix)."""
    RESTORERS.register(info.name, info)


def list_restorers() -> list[Any]:
    """Every registered method and form, in registration order."""
    return [info for _, info in RESTORERS.items()]


def method_info(spec: str) -> Any:
    """The registry entry for a method name or spec (``NAME``, ``irestore:MODEL@STEPS``,
    ``NAME+ensembleN``, ``plan:...``); KeyError for unknown ones. Needs no weights."""
    return RESTORERS.resolve(spec)


def create_restorer(spec: str, device: str = "cpu", seed: int = 0) -> Any:
    """Build a method by name or spec (loads its weights); KeyError for unknown ones."""
    return method_info(spec).build(RESTORERS.canonical(spec), device, seed)


# ------------------------------------------------------------------ weights


def register_weights(source: Any) -> None:
    """A named asset's :class:`~irestore.weights.WeightSource`; the identical source again is a no-op."""
    try:
        WEIGHTS.register(source.name, source)
    except ValueError:
        raise ValueError(f"weights {source.name!r} are already registered with a different source") from None


def list_weights() -> list[str]:
    return sorted(WEIGHTS.names())


def weights_source(name: str) -> Any:
    """The registered source of ``name``; KeyError naming the registered ones otherwise."""
    return WEIGHTS.get(name)
