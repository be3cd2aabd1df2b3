"""Start-up time: ``opsctl --help`` against a minimal one-command Typer app's ``--help``.

Target: opsctl at most 1.5x the bare app (heavy modules are imported lazily, never at start-up).
Run: python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_APP = '''
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


if __name__ == "__main__":
    app()
'''


def timed(argv: list[str], runs: int) -> list[float]:
    """Run ``argv`` ``runs`` times (after one warm-up) and return the wall times in seconds."""
    subprocess.run(argv, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare.py"
        bare.write_text(BARE_APP)
        baseline = timed([sys.executable, str(bare), "--help"], runs)
    ours = timed([sys.executable, "-m", "opsctl", "--help"], runs)
    subcommand = timed([sys.executable, "-m", "opsctl", "check", "run", "--help"], runs)
    base = statistics.median(baseline)
    print(f"runs: {runs} each, median wall time")
    print(f"  bare Typer app --help      {base * 1000:7.1f} ms   (baseline)")
    median = statistics.median(ours)
    verdict = "OK" if median <= 1.5 * base else "OVER TARGET"
    print(
        f"  opsctl --help              {median * 1000:7.1f} ms   {median / base:4.2f}x  (target <= 1.50x: {verdict})"
    )
    # For information: a sub-command's help also processes the global options, and Typer
    # coerces option values through pydantic, which the bare app's --help never imports.
    median = statistics.median(subcommand)
    print(
        f"  opsctl check run --help    {median * 1000:7.1f} ms   {median / base:4.2f}x  (no target)"
    )


if __name__ == "__main__":
    main()
