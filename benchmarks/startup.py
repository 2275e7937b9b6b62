"""Start-up time of the command line, beside a bare Python start and `import torch`, in one run.

    python benchmarks/startup.py [--repeats 5]

Each command runs in a fresh process --repeats times; the median wall time is printed. `irestore
--help` imports no subcommand module (irestore.cli.app.SUBCOMMANDS), so it should sit near the
bare start; a subcommand's own help imports that subcommand and, with it, torch. Prints numbers;
no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "irestore --help": [sys.executable, "-m", "irestore.cli", "--help"],
    "irestore --version": [sys.executable, "-m", "irestore.cli", "--version"],
    "irestore restore --help": [sys.executable, "-m", "irestore.cli", "restore", "--help"],
    "irestore models list": [sys.executable, "-m", "irestore.cli", "models", "list"],
}


def median_seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':32} {'median s':>9}")
    for name, command in COMMANDS.items():
        print(f"{name:32} {median_seconds(command, args.repeats):9.2f}")


if __name__ == "__main__":
    main()
