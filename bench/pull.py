"""`hallmark pull` beside `curl` + `openssl dgst -sha256` (the anchor) and `hf_hub_download`.

    .venv/bin/python bench/pull.py            # a 1 GiB version and a 4 x 256 MiB version
    .venv/bin/python bench/pull.py --quick    # 64 MiB and 4 x 16 MiB, for a smoke run

A throw-away stack (bench/_stack.py: SQLite, anvil with the registry, gunicorn sync workers, as
bench/download.py) publishes two versions of the seeded model through the API: one holding one
large file, one holding four files of a quarter of that size. Each is then downloaded, in one
run, round after round (the order rotated each round, dirty pages flushed before each client), by:

- anchor: for each file `curl -sS -f -o FILE` of its resolve URL, then `openssl dgst -sha256 FILE`
  (what a careful shell script does: download, then check the digest);
- `hallmark pull --no-verify`: our downloader (ranged GETs over kept-alive connections, `--workers`
  in parallel, every segment checked as it arrives, the whole-file SHA-256 checked against the
  signed metadata; resumable); it is the anchor's equivalent (bytes + digests, no chain);
- `hallmark pull` with the chain check (the digests computed on arrival against the registry on
  anvil; the folder is not read again): the full command, shown for what the chain check costs;
- `hf_hub_download` for each file, then hashlib SHA-256 of it (huggingface_hub does not check the digest).

Times are wall-clock from start to exit of each client process (Python start-up included for the
Python clients); peak RSS is the client's maximum resident set size as /usr/bin/time reports it,
for the anchor the largest of curl's and openssl's. The figures are the best of --repeat rounds; every download goes to a
fresh folder on the same disk, removed afterwards. Target: `hallmark pull --no-verify` at >= 0.9x
the anchor's speed, with a peak RSS flat in the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _stack import Stack, children_of, cleanup_on_sigterm, commit_note, cpu_seconds, load_note  # noqa: E402
from download import Marketplace, write_safetensors  # noqa: E402

MiB = 1024**2
HALLMARK = Path(sys.executable).parent / "hallmark"
TARGET = 0.9
FLAT_MB = 16

HF_SCRIPT = """
import hashlib, sys
from huggingface_hub import hf_hub_download
endpoint, token, repo, commit, folder, *names = sys.argv[1:]
for name in names:
    path = hf_hub_download(repo, name, revision=commit, endpoint=endpoint, token=token, local_dir=folder)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    print(name, digest.hexdigest())
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run `cmd` under /usr/bin/time (its maximum resident set size: the child's own, not
    inflated by this Python parent it was forked from); wall seconds, peak RSS (MB), CPU seconds
    (user + system), stdout."""
    report = Path(env["HALLMARK_CONFIG_DIR"]).parent / "time.txt"
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-o", str(report), "-f", "%M %U %S", *cmd], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {done.returncode}: {done.stderr[-800:]}")
    peak, user, system = report.read_text().split()[-3:]
    return seconds, int(peak) / 1024, float(user) + float(system), done.stdout


@dataclass
class Measure:
    seconds: float
    peak_mb: float
    client_cpu: float  # the client processes' CPU seconds
    server_cpu: float  # gunicorn's workers' CPU seconds over the same time


class Bench:
    def __init__(self, stack: Stack, ours: Marketplace, workers: int | None):
        self.stack, self.ours, self.workers = stack, ours, workers
        self.server = children_of(ours.proc.pid)  # the gunicorn workers (sync: they live on)
        self.repo = ours.seed["repo_id"]
        self.token = ours.licensed_token
        self.scratch = stack.dir / "scratch"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HALLMARK_", "HF_"))}
        self.env.update(HALLMARK_CONFIG_DIR=str(stack.dir / "cli"), HALLMARK_TOKEN=self.token, HF_HOME=str(stack.dir / "hf"),
                        HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")

    def fresh(self) -> Path:
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutil.rmtree(self.stack.dir / "hf", ignore_errors=True)
        # the previous client's gigabyte is still being written back: flush it now, so its
        # writeback does not land on the next client's clock (it made whichever ran second slower)
        os.sync()
        self.scratch.mkdir()
        return self.scratch / "model"

    def measured(self, measure: Callable[[dict], tuple[float, float, float]], version: dict) -> Measure:
        """`measure(version)` with the server's CPU over the same time."""
        before = cpu_seconds(self.server)
        seconds, peak, client_cpu = measure(version)
        return Measure(seconds, peak, client_cpu, cpu_seconds(self.server) - before)

    def anchor(self, version: dict) -> tuple[float, float, float]:
        folder = self.fresh()
        folder.mkdir()
        seconds, peak, cpu = 0.0, 0.0, 0.0
        for f in version["files"]:
            url = self.ours.resolve_url(self.ours.endpoint, version["number"], f["path"])
            target = folder / f["path"]
            s1, m1, c1, _ = timed(["curl", "-sS", "-f", "-o", str(target), "-H", f"Authorization: Bearer {self.token}", url], self.env)
            s2, m2, c2, out = timed(["openssl", "dgst", "-sha256", "-r", str(target)], self.env)
            if out.split()[0] != f["sha256"]:
                raise RuntimeError(f"{f['path']}: curl got other bytes")
            seconds += s1 + s2
            peak = max(peak, m1, m2)
            cpu += c1 + c2
        return seconds, peak, cpu

    def pull(self, version: dict, *, chain: bool) -> tuple[float, float, float]:
        folder = self.fresh()
        cmd = [str(HALLMARK), "pull", self.repo, "--revision", f"v{version['number']}", "--dir", str(folder),
               "--endpoint", self.ours.endpoint, *(["--workers", str(self.workers)] if self.workers else [])]
        cmd += ["--rpc", self.stack.rpc_url, "--registry", self.stack.deployment["address"]] if chain else ["--no-verify"]
        seconds, peak, cpu, out = timed(cmd, self.env)
        for f in version["files"]:
            if (folder / f["path"]).stat().st_size != f["size"]:
                raise RuntimeError(f"hallmark pull left {f['path']} with the wrong size")
        if chain and "verified:" not in out:
            raise RuntimeError(f"hallmark pull did not verify: {out[-500:]}")
        return seconds, peak, cpu

    def hf(self, version: dict) -> tuple[float, float, float]:
        folder = self.fresh()
        names = [f["path"] for f in version["files"]]
        seconds, peak, cpu, out = timed([sys.executable, "-c", HF_SCRIPT, self.ours.endpoint, self.token, self.repo,
                                         version["commit"], str(folder), *names], self.env)
        got = dict(line.split() for line in out.splitlines())
        if any(got.get(f["path"]) != f["sha256"] for f in version["files"]):
            raise RuntimeError("hf_hub_download got other bytes")
        return seconds, peak, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB and 4 x 16 MiB instead of 1 GiB and 4 x 256 MiB")
    parser.add_argument("--size-mib", type=int, default=None, help="the one-file version's size, MiB (default 1024; --quick 64)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the fastest of each is kept (default 3)")
    parser.add_argument("--workers", type=int, default=None, help="hallmark pull --workers (default: its own, 4 or the cores if fewer)")
    parser.add_argument("--gunicorn-workers", type=int, default=6, help="gunicorn sync workers (default 6)")
    parser.add_argument("--tmp", default=None, help="parent of the temp directory (default: the system temp dir)")
    args = parser.parse_args()
    if shutil.which("curl") is None or shutil.which("openssl") is None or not Path("/usr/bin/time").exists():
        print("curl, openssl or /usr/bin/time is not installed (Debian: apt-get install curl openssl time)", file=sys.stderr)
        return 0
    big = (args.size_mib or (64 if args.quick else 1024)) * MiB
    cleanup_on_sigterm()
    note = f"{commit_note()}; {load_note()}"
    rows: dict[tuple[str, str], list[Measure]] = {}
    with Stack(prefix="hallmark-bench-pull-", tmp_parent=args.tmp) as stack:
        need = 5 * big + 1024 * MiB
        if shutil.disk_usage(stack.dir).free < need:
            print(f"not enough space in {stack.dir}: need about {need / MiB:.0f} MiB", file=sys.stderr)
            return 0
        try:
            print(f"starting anvil, seeding, starting gunicorn in {stack.dir} ...", file=sys.stderr)
            stack.env["SECURE_SSL_REDIRECT"] = "0"  # plain HTTP on loopback (DEBUG off would redirect to https)
            ours = Marketplace(stack, args.gunicorn_workers)
            versions = {}
            for kind, sizes in (("one", [big]), ("four", [big // 4] * 4)):
                sources = []
                for n, size in enumerate(sizes):
                    path = stack.dir / f"{kind}-{n}-{size // MiB}m.safetensors"
                    write_safetensors(path, size)
                    sources.append(path)
                print(f"publishing {kind}: {len(sizes)} x {sizes[0] // MiB} MiB ...", file=sys.stderr)
                versions[kind] = ours.publish(sources)
                for source in sources:
                    source.unlink()
                if "segments" not in (versions[kind].get("metadata") or {}):
                    print(f"  note: v{versions[kind]['number']} has no segment document (whole-file checks)", file=sys.stderr)
            bench = Bench(stack, ours, args.workers)
            plan = [
                ("anchor", bench.anchor),
                ("pull", lambda v: bench.pull(v, chain=False)),
                ("pull_chain", lambda v: bench.pull(v, chain=True)),
                ("hf", bench.hf),
            ]
            for round_ in range(args.repeat):
                print(f"round {round_ + 1} of {args.repeat} ...", file=sys.stderr)
                turn = plan[round_ % len(plan):] + plan[:round_ % len(plan)]  # each client goes first once
                for kind, version in versions.items():
                    for name, measure in turn:
                        rows.setdefault((name, kind), []).append(bench.measured(measure, version))
        except Exception:
            for name in ("gunicorn", "anvil"):
                tail = stack.log_tail(name)
                if tail:
                    print(f"--- {name} log ---\n{tail}", file=sys.stderr)
            raise
        finally:
            shutil.rmtree(stack.dir / "scratch", ignore_errors=True)

    fastest = {key: min(runs, key=lambda m: m.seconds) for key, runs in rows.items()}
    best = {key: (fastest[key].seconds, max(m.peak_mb for m in runs)) for key, runs in rows.items()}
    label = {
        "anchor": "curl -o FILE + openssl dgst -sha256 (anchor)",
        "pull": f"hallmark pull --no-verify --workers {args.workers or 'default'}",
        "pull_chain": f"hallmark pull --workers {args.workers or 'default'} (+ chain check: hashes again)",
        "hf": "hf_hub_download + hashlib sha256",
    }
    kinds = {"one": f"1 x {big // MiB} MiB", "four": f"4 x {big // 4 // MiB} MiB"}
    print(f"{note}; {os.cpu_count()} cores; best of {args.repeat} rounds; gunicorn -w {args.gunicorn_workers} (sync), SQLite, loopback\n")
    print("| client | " + " | ".join(f"{k}: s | MB/s | x anchor | peak RSS MB" for k in kinds.values()) + " |")
    print("|---|" + "---:|---:|---:|---:|" * len(kinds))
    for name in label:
        cells = []
        for kind in kinds:
            seconds, peak = best[(name, kind)]
            ratio = best[("anchor", kind)][0] / seconds
            cells.append(f"{seconds:.2f} | {big / seconds / 1e6:.0f} | {ratio:.2f} | {peak:.0f}")
        print(f"| {label[name]} | " + " | ".join(cells) + " |")
    print()
    for kind, text in kinds.items():
        ratio = best[("anchor", kind)][0] / best[("pull", kind)][0]
        print(f"{'PASS' if ratio >= TARGET else 'MISS'}  hallmark pull, {text}: {ratio:.2f}x the anchor's speed (target >= {TARGET}x)")
    growth = best[("pull", "one")][1] - best[("pull", "four")][1]
    print(f"{'PASS' if growth <= FLAT_MB else 'MISS'}  hallmark pull's peak RSS flat in file size "
          f"({big // 4 // MiB} -> {big // MiB} MiB files: {growth:+.1f} MB, limit +{FLAT_MB} MB)")
    print("\nCPU seconds of the fastest round (client + gunicorn; 2 cores cap what both can use at once):\n")
    print("| client | " + " | ".join(f"{k}: client | server | total" for k in kinds.values()) + " |")
    print("|---|" + "---:|---:|---:|" * len(kinds))
    for name in label:
        cells = [f"{fastest[(name, k)].client_cpu:.2f} | {fastest[(name, k)].server_cpu:.2f} | "
                 f"{fastest[(name, k)].client_cpu + fastest[(name, k)].server_cpu:.2f}" for k in kinds]
        print(f"| {label[name]} | " + " | ".join(cells) + " |")
    print(json.dumps({f"{n}/{k}": {"seconds": round(s, 3), "peak_rss_mb": round(m, 1), "client_cpu": round(fastest[(n, k)].client_cpu, 2),
                                   "server_cpu": round(fastest[(n, k)].server_cpu, 2)} for (n, k), (s, m) in best.items()}))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
