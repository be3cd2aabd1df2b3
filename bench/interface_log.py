"""Scan throughput of the interface_log check on a generated transmission log, against the
mawk one-liner of issue 5 on the same file in the same run.

The log (default 1 GB) has five targets and about 2 % failures, in the bench line format:
``2026-11-01 08:00:01.123 INFO  [upload] target=NATIONAL batch=100001 records=50 status=OK
latency_ms=231``. It is generated fast: one 4 MB piece of lines, written again and again with
its hour and batch numbers changed.

Timed: (a) ``LC_ALL=C mawk '...'`` (per-target totals, failures and latency sums), and
(b) the check's whole run with ``start_at_end: false``: LogReader, parsing, statistics with
exact percentiles, hourly aggregates, items. The check's totals must equal mawk's.

Each is run ``--repeat`` times, alternately, and the best time of each counts.

Run: python bench/interface_log.py [--size-mb 1024] [--repeat 3] [--dir DIR] [--keep]
[--python-mb 64]
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = ("NATIONAL", "VENDOR_A", "VENDOR_B", "DISP_01", "DISP_02")
MAWK = (
    '{t=substr($5,8); n[t]++; if($8!="status=OK")f[t]++; L[t]+=substr($9,12)} '
    "END{for(k in n) print k,n[k],f[k],L[k]}"
)
PIECE_LINES = 40_000  # about 4 MB


def piece(seed: int = 2026) -> bytes:
    """One piece of an hour of lines; ``HH`` is replaced by the hour, ``RRRR`` by the piece's
    number (so batch numbers differ between pieces)."""
    rng = random.Random(seed)
    lines = []
    for index in range(PIECE_LINES):
        minute, second = divmod(index * 3600 // PIECE_LINES, 60)
        target = rng.choice(TARGETS)
        latency = int(rng.lognormvariate(5.2, 0.6)) + 1
        records = rng.randint(1, 200)
        stamp = f"2026-11-DD HH:{minute:02d}:{second:02d}.{rng.randrange(1000):03d}"
        head = f"{stamp} INFO  [upload] target={target} batch=RRRR{index:05d} records={records}"
        if rng.random() < 0.02:
            code = rng.choice(("E101 timeout waiting for reply", "E500 rejected by peer"))
            lines.append(f"{head} status=FAIL latency_ms={latency} error={code}\n")
        else:
            lines.append(f"{head} status=OK latency_ms={latency}\n")
    return "".join(lines).encode()


def generate(path: Path, size_mb: int) -> int:
    """Write about size_mb MB of lines to path; return the size in bytes."""
    template = piece()
    written = 0
    with path.open("wb") as file:
        number = 0
        while written < size_mb * 1024 * 1024:
            day, hour = divmod(number, 24)
            data = (
                template.replace(b"DD", f"{1 + day % 28:02d}".encode())
                .replace(b"HH", f"{hour:02d}".encode())
                .replace(b"RRRR", f"{number % 10000:04d}".encode())
            )
            file.write(data)
            written += len(data)
            number += 1
    return written


def run_mawk(path: Path) -> tuple[float, dict[str, tuple[int, int, int]]]:
    started = time.perf_counter()
    output = subprocess.run(
        ["mawk", MAWK, str(path)], env={"LC_ALL": "C"}, check=True, capture_output=True, text=True
    ).stdout
    took = time.perf_counter() - started
    totals = {}
    for line in output.splitlines():
        name, lines, failed, latency = (line.split(" ") + ["", "", ""])[:4]
        totals[name] = (int(lines), int(failed or 0), int(latency or 0))
    return took, totals


def run_check(path: Path, fast: bool | None) -> tuple[float, dict, object]:
    import checks.interface_log as interface_log
    from checks.interface_log import InterfaceLogCheck, InterfaceLogConfig
    from opsctl.inventory import LogSource

    config = InterfaceLogConfig(start_at_end=False, max_read_mb=1 << 20, silence=None)
    source = LogSource(name="bench", path=str(path))
    original = interface_log.make_scanner
    if fast is False:
        interface_log.make_scanner = lambda c, s, fast=None: original(c, s, fast=False)
    try:
        started = time.perf_counter()
        result = InterfaceLogCheck(config, timeout=3600).run(source)
        took = time.perf_counter() - started
    finally:
        interface_log.make_scanner = original
    return took, result.details["targets"], result


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the log (MB)")
    parser.add_argument("--dir", type=Path, help="where to write it (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated log")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument(
        "--python-mb",
        type=int,
        default=64,
        help="also time the pure Python scanner on a log this large (0: skip)",
    )
    arguments = parser.parse_args()
    if shutil.which("mawk") is None:
        sys.exit("mawk not found (Debian package mawk)")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    folder = Path(tempfile.mkdtemp(prefix="interface-log-", dir=arguments.dir))
    try:
        path = folder / "upload.log"
        started = time.perf_counter()
        size = generate(path, arguments.size_mb)
        megabytes = size / 1e6
        print(f"generated {megabytes:.0f} MB in {time.perf_counter() - started:.1f}s: {path}")

        # Alternate the two, and keep each one's best time: this machine's speed wanders
        # between runs by tens of percent (shared CPUs), and both are treated alike.
        mawk_times, ours_times = [], []
        rss_before = peak_rss_mb()
        for _ in range(arguments.repeat):
            took, mawk = run_mawk(path)
            mawk_times.append(took)
            took, ours, result = run_check(path, fast=None)
            ours_times.append(took)
        rss_after = peak_rss_mb()
        mawk_time, ours_time = min(mawk_times), min(ours_times)

        for name, (lines, failed, latency) in sorted(mawk.items()):
            got = ours[name]
            assert (got["lines"], got["failed"], got["latency_sum"]) == (lines, failed, latency), (
                name,
                got,
                (lines, failed, latency),
            )
        assert set(ours) == set(mawk), (set(ours), set(mawk))
        total_lines = sum(t[0] for t in mawk.values())
        failures = sum(t[1] for t in mawk.values())
        print(f"{total_lines} lines, {failures} failures ({100 * failures / total_lines:.2f} %)")

        def rates(times: list[float]) -> str:
            return ", ".join(f"{megabytes / took:.0f}" for took in times)

        print(
            f"mawk one-liner     best {mawk_time:6.2f}s  {megabytes / mawk_time:6.1f} MB/s  (runs: {rates(mawk_times)} MB/s)"
        )
        print(
            f"interface_log run  best {ours_time:6.2f}s  {megabytes / ours_time:6.1f} MB/s  (runs: {rates(ours_times)} MB/s)"
        )
        print(f"ratio              {mawk_time / ours_time:.2f}x mawk (target >= 0.5x)")
        print(
            f"peak RSS: {rss_before:.0f} MB before the scan, {rss_after:.0f} MB after "
            f"(file {megabytes:.0f} MB): memory stays flat"
        )
        national = ours["NATIONAL"]
        print(
            "NATIONAL: lines {lines}, failed {failed}, success {success_rate}%, p50 "
            "{latency_p50} ms, p95 {latency_p95} ms, max {latency_max} ms".format(**national)
        )
        print(
            f"statistics agree with mawk: totals, failures and latency sums of {len(mawk)} targets"
        )

        if arguments.python_mb:
            small = folder / "python.log"
            small_size = generate(small, arguments.python_mb) / 1e6
            python_time, python, _ = run_check(small, fast=False)
            fast_time, fast, _ = run_check(small, fast=None)
            assert python == fast, "the Python and numpy scanners disagree"
            print(
                f"on {small_size:.0f} MB: pure Python scanner {small_size / python_time:.1f} MB/s,"
                f" numpy scanner {small_size / fast_time:.1f} MB/s (same statistics)"
            )
    finally:
        if arguments.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
