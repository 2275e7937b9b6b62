"""The one registry: every kind is complete however the package was imported."""

import json
import subprocess
import sys

import pytest

from irestore.registry import Registry

EXPECTED = {  # a few entries of each kind that must be there, whatever was imported before
    "list_networks": ["erunet-small", "m3unet-small", "erunet-tiny"],
    "list_classifier_networks": ["degnet", "degnet-tiny"],
    "list_samplers": ["euler", "posterior", "ddim"],
    "list_text_encoders": ["minilm", "clip"],
    "list_captioners": ["degradation", "coca", "file"],
    "list_classifiers": ["degnet", "clip"],
    "list_weights": ["allinone-small", "derain", "degnet-default", "ffdnet-color", "brisque-live"],
}


def _listed_in_a_fresh_process(first_import: str) -> dict:
    code = (f"{first_import}\nimport json, irestore.registry as r\n"
            "out = {name: getattr(r, name)() for name in " + repr(sorted(EXPECTED)) + "}\n"
            "out['list_restorers'] = [info.name for info in r.list_restorers()]\n"
            "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("first_import", ["pass", "import irestore.weights", "import irestore.restorers.identity"])
def test_every_kind_is_complete_whatever_was_imported_first(first_import):
    listed = _listed_in_a_fresh_process(first_import)
    for kind, names in EXPECTED.items():
        assert set(names) <= set(listed[kind]), (kind, listed[kind])
    assert {"allinone-small", "ffdnet-color", "plan:", "irestore:"} <= set(listed["list_restorers"])


def test_an_entry_cannot_be_replaced_silently_and_the_same_one_registers_twice():
    registry = Registry("thing", ())
    registry.register("a", 1)
    registry.register("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        registry.register("a", 2)


def test_lookups_name_what_is_registered_and_follow_aliases():
    registry = Registry("thing", ())
    registry.register("long-name", 3)
    registry.alias("short", "long-name")
    assert registry.get("short") == 3 and "short" not in registry.names()
    with pytest.raises(KeyError, match="unknown thing 'nope'; registered: long-name"):
        registry.get("nope")
    assert registry.find("nope") is None


def test_providers_are_imported_on_first_lookup_not_before(tmp_path, monkeypatch):
    (tmp_path / "provider_for_test.py").write_text(
        "from test_registry import PROVIDED\nPROVIDED.register('from-provider', 7)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "provider_for_test" not in sys.modules
    assert PROVIDED.find("from-provider", load=False) is None  # nothing imported yet
    assert PROVIDED.get("from-provider") == 7
    assert "provider_for_test" in sys.modules


PROVIDED = Registry("provided thing", ("provider_for_test",))


def test_scoped_registrations_are_gone_after_the_block():
    registry = Registry("thing", ())
    registry.register("kept", 1)
    with registry.scoped():
        registry.register("temporary", 2)
        assert registry.names() == ["kept", "temporary"]
    assert registry.names() == ["kept"]


def test_a_spec_resolver_answers_lookups_by_spec():
    registry = Registry("method", ())
    registry.register("x", "plain")
    registry.set_resolver(lambda spec: f"resolved {spec}")
    assert registry.resolve("x@3") == "resolved x@3" and registry.get("x") == "plain"
