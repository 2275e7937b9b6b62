"""The real `irestore` CLI in a real process, with one extra registered method `slow-standin`
that sleeps IRESTORE_TEST_SLOW_S seconds per image (default 0.5) and returns its input, so
interrupt tests can signal a batch at a known point. Run: python tests/slow_cli.py restore ..."""

import os
import sys
import time

import numpy as np

from irestore.registry import register_restorer
from irestore.restorers.base import ArrayMethod, Card, Condition
from irestore.restorers.catalogue import MethodInfo


class SlowStandIn(ArrayMethod):
    card = Card("slow-standin", "returns its input after a pause (tests only)", any_input=True)

    def restore_array(self, image: np.ndarray, condition: Condition) -> np.ndarray:
        print(f"slow-standin: started {image.shape[1]}x{image.shape[0]}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("IRESTORE_TEST_SLOW_S", "0.5")))
        return image.copy()


register_restorer(MethodInfo("slow-standin", SlowStandIn.card, lambda spec, device, seed: SlowStandIn()))

if __name__ == "__main__":
    from irestore.cli.app import app

    app(prog_name="irestore")
