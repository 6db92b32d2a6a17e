#!/usr/bin/env python
"""Streaming SHA-256 of model files beside `openssl dgst -sha256`, measured in one run.

    .venv/bin/python bench/hashing.py                    # 2 GiB file, 4 x 512 MiB files
    .venv/bin/python bench/hashing.py --size-gib 0.25    # a quick try
    .venv/bin/python bench/hashing.py --tmp /var/tmp     # where the test files go (default: $TMPDIR)

Writes a file of `--size-gib` GiB of random bytes (in blocks, never whole in memory) and
`--files` more files sharing the same total size, then measures:

(a) `hallmark.manifest.sha256_file` on the big file: throughput, and its peak memory (VmHWM of
    the child process that runs it; the interpreter's resident size before hashing is printed
    beside it, so the difference is what hashing costs);
(b) `openssl dgst -sha256` on the same file (anchor), and `sha256sum` (coreutils) for context;
(c) `hallmark.manifest.sha256_files` (one thread per file) on the several files beside the same
    files hashed one after another with `sha256_file`: the parallel speedup.

Ours is timed around the call inside a child process (interpreter start-up excluded); openssl
and sha256sum are timed as whole processes (their start-up is a few milliseconds). Every
measurement runs `--repeat` times (default 2) and the best is kept: the files were just written,
so they are warm in the page cache and this measures hashing, not the disk.
Targets: (a) >= 0.9x openssl; peak memory < 100 MB whatever the size; (c) >= 1.6x on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _stack import load_note  # noqa: E402

GiB = 1024**3
MiB = 1024**2
WRITE_BLOCK = 8 * MiB

# Runs in a fresh interpreter: hashes the paths given, prints seconds and memory as JSON.
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from hallmark.manifest import sha256_file, sha256_files

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB

mode, paths = sys.argv[2], sys.argv[3:]
baseline = status("VmRSS")
start = time.perf_counter()
if mode == "parallel":
    results = sha256_files(paths)
else:
    results = [sha256_file(p) for p in paths]
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "bytes": sum(n for _, n in results), "digests": [d for d, _ in results],
                  "baseline_kb": baseline, "peak_kb": status("VmHWM")}))
"""


def write_random(path: Path, size: int) -> None:
    """`size` bytes from os.urandom, written block by block."""
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(WRITE_BLOCK, left)
            fh.write(os.urandom(n))
            left -= n


def ours(mode: str, paths: list[Path]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "client"), mode, *map(str, paths)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def external(command: list[str], path: Path) -> tuple[float, str]:
    """Wall time of one process hashing `path`, and the hex digest it printed."""
    start = time.perf_counter()
    out = subprocess.run([*command, str(path)], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    digest = out.stdout.split("=")[-1].strip() if "=" in out.stdout else out.stdout.split()[0]
    return seconds, digest


def best(runs: int, measure):
    results = [measure() for _ in range(runs)]
    return min(results, key=lambda r: r["seconds"] if isinstance(r, dict) else r[0])


def cpu_note() -> str:
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, SHA extensions: {'yes' if 'sha_ni' in flags else 'no'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of the big file, and total of the several files (default 2)")
    parser.add_argument("--files", type=int, default=4, help="how many files for the parallel measurement (default 4)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is kept (default 2)")
    parser.add_argument("--tmp", default=None, help="directory for the test files (default: the system temp dir)")
    args = parser.parse_args()
    size = int(args.size_gib * GiB) // MiB * MiB
    part = size // args.files // MiB * MiB
    if size <= 0 or part <= 0:
        parser.error("--size-gib is too small for --files")
    note = load_note()
    openssl = shutil.which("openssl")
    if openssl is None:
        print("openssl is not installed (`make bench-deps`)", file=sys.stderr)
        return 0

    with tempfile.TemporaryDirectory(prefix="hallmark-bench-hash-", dir=args.tmp) as tmp:
        need = size + part * args.files
        free = shutil.disk_usage(tmp).free
        if free < need + GiB:
            print(f"not enough space in {tmp}: need {need / GiB:.1f} GiB + 1 GiB spare, have {free / GiB:.1f} GiB", file=sys.stderr)
            return 0
        big = Path(tmp) / "big.bin"
        parts = [Path(tmp) / f"part-{i}.bin" for i in range(args.files)]
        print(f"writing {size / GiB:.2f} GiB + {args.files} x {part / MiB:.0f} MiB of random bytes to {tmp} ...", file=sys.stderr)
        write_random(big, size)
        for path in parts:
            write_random(path, part)

        single = best(args.repeat, lambda: ours("serial", [big]))
        ssl_seconds, ssl_digest = best(args.repeat, lambda: external([openssl, "dgst", "-sha256", "-r"], big))
        coreutils = shutil.which("sha256sum")
        sum_seconds = best(args.repeat, lambda: external([coreutils], big))[0] if coreutils else None
        serial = best(args.repeat, lambda: ours("serial", parts))
        parallel = best(args.repeat, lambda: ours("parallel", parts))

    same = single["digests"][0] == ssl_digest.split()[0] and serial["digests"] == parallel["digests"]
    gbps = lambda n, s: n / s / 1e9  # noqa: E731
    ours_rate = gbps(size, single["seconds"])
    ssl_rate = gbps(size, ssl_seconds)
    peak_mb = single["peak_kb"] / 1024
    base_mb = single["baseline_kb"] / 1024
    par_peak_mb = parallel["peak_kb"] / 1024
    speedup = serial["seconds"] / parallel["seconds"]

    print(f"{cpu_note()}; {note}; best of {args.repeat} runs each, files warm in the page cache\n")
    print(f"| measurement ({size / GiB:.2f} GiB file) | seconds | GB/s | × openssl |")
    print("|---|---:|---:|---:|")
    print(f"| openssl dgst -sha256 (anchor) | {ssl_seconds:.2f} | {ssl_rate:.2f} | 1.00 |")
    print(f"| hallmark sha256_file | {single['seconds']:.2f} | {ours_rate:.2f} | {ours_rate / ssl_rate:.2f} |")
    if sum_seconds:
        print(f"| sha256sum (coreutils, context) | {sum_seconds:.2f} | {gbps(size, sum_seconds):.2f} | {ssl_seconds / sum_seconds:.2f} |")
    print()
    print("| memory of the hashing child | MB |")
    print("|---|---:|")
    print(f"| resident before hashing (interpreter) | {base_mb:.1f} |")
    print(f"| peak (VmHWM), sha256_file on {size / GiB:.2f} GiB | {peak_mb:.1f} |")
    print(f"| peak (VmHWM), sha256_files on {args.files} files | {par_peak_mb:.1f} |")
    print()
    print(f"| {args.files} files x {part / MiB:.0f} MiB | seconds | GB/s | speedup |")
    print("|---|---:|---:|---:|")
    print(f"| sha256_file, one after another | {serial['seconds']:.2f} | {gbps(serial['bytes'], serial['seconds']):.2f} | 1.00 |")
    print(f"| sha256_files (threads) | {parallel['seconds']:.2f} | {gbps(parallel['bytes'], parallel['seconds']):.2f} | {speedup:.2f} |")
    print()
    checks = [
        ("digests agree (ours = openssl; parallel = one after another)", same),
        (f"sha256_file >= 0.9x openssl ({ours_rate / ssl_rate:.2f}x)", ours_rate >= 0.9 * ssl_rate),
        (f"peak memory of sha256_file < 100 MB ({peak_mb:.1f} MB)", peak_mb < 100),
        (f"sha256_files >= 1.6x one after another ({speedup:.2f}x on {os.cpu_count()} cores)", speedup >= 1.6),
    ]
    for label, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {label}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
