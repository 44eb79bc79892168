"""How long the command line takes to answer: ``promoterlab --help`` (which imports neither torch
nor pandas) against a command that does import the training stack, in one run.

    python benchmarks/cli_startup.py --repeats 7

Prints the median wall seconds of each (fresh interpreter every time) and their ratio. Run it on
an idle machine: a process start is short enough for any other job to move it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "promoterlab --help": [sys.executable, "-m", "promoterlab", "--help"],
    "import promoterlab.api (torch, Lightning, pandas)": [sys.executable, "-c", "import promoterlab.api"],
}


def median_seconds(command: list[str], repeats: int) -> float:
    """Median wall seconds of ``repeats`` runs of ``command`` (after one untimed run that warms the
    file cache)."""
    subprocess.run(command, capture_output=True, check=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = {name: median_seconds(command, args.repeats) for name, command in COMMANDS.items()}
    for name, seconds in results.items():
        print(f"{name:55s} {seconds:6.3f} s (median of {args.repeats})")
    help_s, api_s = results.values()
    print(f"--help takes {help_s / api_s:.2f} x the time of importing the training stack")


if __name__ == "__main__":
    main()
