#!/usr/bin/env python
"""A licensed download of a large file through the marketplace (gunicorn) beside nginx serving
the same file from disk, both over loopback in one run.

    make bench-deps                                  # nginx, curl
    .venv/bin/python bench/download.py               # 1 GiB and 256 MiB files (needs ~4 GiB free in $TMPDIR)
    .venv/bin/python bench/download.py --size-mib 256 --small-mib 64   # a quick try

Everything is thrown away afterwards: a temp directory holds a SQLite database, the media
folder, an anvil chain with ModelRegistry deployed, nginx's config, temp files and pid file.

Our side: `manage.py seed_demo` creates the demo vendor, its live model and a buyer holding a
licence. The vendor publishes a new version holding two files of random bytes (valid
safetensors files: an 8-byte header length, a JSON header, one U8 tensor) of `--size-mib` and
`--small-mib` through the REST API as any vendor would: a draft version, a raw `PUT` of each
file (`curl -T`), finalize (hashing and inspection; tasks run eagerly without Redis), the
returned EIP-712 message signed with the vendor's key (anvil account #1), the signature posted,
the version live once anchored on chain. gunicorn (`config.wsgi`, `--workers` sync workers,
DEBUG off) serves `GET /<vendor>/<model>/resolve/<rev>/<path>` with the buyer's token: the real
licence check (a mirrored licence), a Download row written, the file sent by FileResponse
(gunicorn's sendfile).

The anchor: nginx (`sendfile on`, one worker) serving the very file the marketplace stored, from
a static location. A third row (skip with --no-x-accel): nginx in front of a second gunicorn
started with DOWNLOAD_X_ACCEL_REDIRECT_PREFIX, so Django checks the licence and nginx sends the
bytes from an `internal` location aliasing MEDIA_ROOT.

Each download is `curl -o /dev/null`, timed by curl (`time_total`), best of `--repeat`
(default 3), interleaved. The file is warm in the page cache (just written and hashed): this
measures serving, not the disk. Memory: while each download runs, a thread samples the VmRSS of
every serving process (gunicorn workers; nginx's worker for the anchor) every 10 ms; VmHWM is
reset before the download (`/proc/PID/clear_refs`) and read after it. The largest figure over
the workers and runs is shown, for both file sizes, so growth with the file size shows.
Targets: ours >= 0.8x nginx; the peak RSS of the workers flat in the file size (the 1 GiB
download's peak within 16 MB of the 256 MiB one's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from _stack import (  # noqa: E402
    Stack,
    children_of,
    cleanup_on_sigterm,
    commit_note,
    free_port,
    load_note,
    proc_status_kb,
    reset_peak_rss,
    wait_http,
)

MiB = 1024**2
FLAT_MB = 16  # "flat": the larger file's peak within this many MB of the smaller one's

NGINX_CONF = """\
{user}worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{
            alias {media}/;
        }}
        location / {{ return 404; }}
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location /_media/ {{
            internal;
            alias {media}/;
        }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_set_header Host $host;
            proxy_read_timeout 900s;
        }}
    }}
}}
"""


def write_safetensors(path: Path, size: int) -> None:
    """A valid safetensors file of exactly `size` bytes: one U8 tensor of random bytes."""
    header = b""
    for _ in range(3):  # the header's own length changes the tensor's length: settle it
        n = size - 8 - len(header)
        header = json.dumps({"weight": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
        header += b" " * (-len(header) % 8)
    n = size - 8 - len(header)
    with open(path, "wb") as fh:
        fh.write(len(header).to_bytes(8, "little") + header)
        left = n
        while left:
            block = min(8 * MiB, left)
            fh.write(os.urandom(block))
            left -= block


class RssSampler:
    """Samples VmRSS of `pids` every `interval` s in a thread; `peak_mb` is the largest seen."""

    def __init__(self, pids: list[int], interval: float = 0.01):
        self.pids, self.interval = pids, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                self.peak_kb = max(self.peak_kb, proc_status_kb(pid, "VmRSS") or 0)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def largest_mb(pids: list[int], key: str) -> float | None:
    values = [v for v in (proc_status_kb(p, key) for p in pids) if v is not None]
    return max(values) / 1024 if values else None


def curl_download(url: str, size: int, pids: list[int], token: str | None = None) -> dict:
    """`curl -o /dev/null` of `url`: seconds (curl's time_total) and the memory of `pids`."""
    before = largest_mb(pids, "VmRSS")
    reset_peak_rss(pids)
    cmd = ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total} %{time_starttransfer}"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    with RssSampler(pids) as sampler:
        out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True)
    code, got, seconds, first = out.stdout.split()
    if code != "200" or int(got) != size:
        raise RuntimeError(f"GET {url} answered {code} with {got} bytes, expected 200 with {size}")
    return {"seconds": float(seconds), "first_s": float(first), "before_mb": before, "sampled_mb": sampler.peak_mb, "hwm_mb": largest_mb(pids, "VmHWM")}


class Marketplace:
    """seed_demo, gunicorn, and a version holding the benchmark's files, published by the vendor."""

    def __init__(self, stack: Stack, workers: int):
        self.stack = stack
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        stack.env["PUBLIC_BASE_URL"] = self.endpoint
        stack.env["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
        stack.env["DOWNLOAD_RATE_LIMIT"] = "1000000/s"
        stack.start_chain()
        self.seed = json.loads(stack.manage("seed_demo", "--json").strip().splitlines()[-1])
        self.vendor_slug, self.model_slug = self.seed["repo_id"].split("/")
        self.vendor_auth = {"Authorization": f"Bearer {self.seed['vendor_token']}"}
        self.licensed_token = self.seed["licensed_token"]
        self.proc = self.gunicorn("gunicorn", self.port, workers)

    def gunicorn(self, name: str, port: int, workers: int, extra_env: dict | None = None):
        proc = self.stack.spawn(name, [
            sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
            "--timeout", "900", "--graceful-timeout", "5",
        ], extra_env=extra_env)
        wait_http(f"http://127.0.0.1:{port}/api/v1/models", proc, timeout=60)
        return proc

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = requests.request(method, f"{self.endpoint}/api/v1/vendor/models/{self.model_slug}{path}",
                                    headers=self.vendor_auth, timeout=900, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def publish(self, files: list[Path]) -> dict:
        """A new live version holding `files`, through the REST API; returns its data."""
        from hallmark import eip712
        from registry import chain

        version = self.api("POST", "/versions", json={})
        vid = version["id"]
        for source in files:  # the raw PUT endpoint, streamed by curl
            out = subprocess.run(
                ["curl", "-sS", "-f", "-X", "PUT", "-H", "Expect:", "-H", f"Authorization: {self.vendor_auth['Authorization']}",
                 "-H", "Content-Type: application/octet-stream", "-T", str(source),
                 f"{self.endpoint}/api/v1/vendor/models/{self.model_slug}/versions/{vid}/files/{source.name}",
                 "-o", "/dev/null", "-w", "%{http_code}"],
                capture_output=True, text=True,
            )
            if out.stdout.strip() != "201":
                raise RuntimeError(f"PUT {source.name} answered {out.stdout.strip()}: {out.stderr}")
        version = self.api("POST", f"/versions/{vid}/finalize")
        version = self.wait(vid, {"awaiting_signature"}, version)
        signature = eip712.sign_typed_data(version["typed_data"], chain.development_keys()[1])
        version = self.api("POST", f"/versions/{vid}/signature", json={"signature": signature})
        return self.wait(vid, {"live"}, version)

    def wait(self, vid: int, wanted: set[str], version: dict, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while version["status"] not in wanted:
            if version["status"] in ("rejected", "failed") or time.monotonic() > deadline:
                raise RuntimeError(f"version {vid} is {version['status']}: {version.get('error')}")
            time.sleep(0.2)
            version = self.api("GET", f"/versions/{vid}")
        return version

    def resolve_url(self, base: str, version: int, name: str) -> str:
        return f"{base}/{self.vendor_slug}/{self.model_slug}/resolve/v{version}/{name}"


class Nginx:
    def __init__(self, stack: Stack, binary: str, upstream_port: int):
        self.dir = stack.dir / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / sub).mkdir(parents=True)
        self.port, self.proxy_port = free_port(), free_port()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, dir=self.dir, port=self.port, proxy_port=self.proxy_port,
                                          media=stack.dir / "media", upstream_port=upstream_port))
        self.proc = stack.spawn("nginx", [binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf), "-g", "daemon off;"])
        wait_http(f"http://127.0.0.1:{self.port}/", self.proc)

    def workers(self) -> list[int]:
        return children_of(self.proc.pid)


def best(results: list[dict]) -> dict:
    """The fastest run's time; the largest memory figures over all runs (the smallest 'before')."""
    return {
        "seconds": min(r["seconds"] for r in results),
        "first_s": min(r["first_s"] for r in results),
        "before_mb": min(r["before_mb"] for r in results if r["before_mb"] is not None),
        "sampled_mb": max(r["sampled_mb"] for r in results),
        "hwm_mb": max(r["hwm_mb"] for r in results if r["hwm_mb"] is not None),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="the large file, MiB (default 1024)")
    parser.add_argument("--small-mib", type=int, default=256, help="the smaller file for the memory comparison, MiB (default 256)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="downloads of each kind; the fastest is kept (default 3)")
    parser.add_argument("--no-x-accel", action="store_true", help="skip the nginx + X-Accel-Redirect row")
    parser.add_argument("--tmp", default=None, help="parent of the temp directory (default: the system temp dir)")
    args = parser.parse_args()
    nginx_bin = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx_bin is None or shutil.which("curl") is None:
        print("nginx or curl is not installed: run `make bench-deps` (Debian: apt-get install nginx curl)", file=sys.stderr)
        return 0
    sizes = {"large": args.size_mib * MiB, "small": args.small_mib * MiB}
    cleanup_on_sigterm()
    note = f"{commit_note()}; {load_note()}"
    runs: dict[tuple[str, str], list[dict]] = {}
    with Stack(prefix="hallmark-bench-download-", tmp_parent=args.tmp) as stack:
        need = 3 * (sizes["large"] + sizes["small"]) + 1024 * MiB
        if shutil.disk_usage(stack.dir).free < need:
            print(f"not enough space in {stack.dir}: need about {need / MiB:.0f} MiB", file=sys.stderr)
            return 0
        try:
            print(f"starting anvil, seeding, starting gunicorn in {stack.dir} ...", file=sys.stderr)
            ours = Marketplace(stack, args.workers)
            names = {kind: f"bench-{size // MiB}m.safetensors" for kind, size in sizes.items()}
            sources = []
            for kind, size in sizes.items():
                path = stack.dir / names[kind]
                write_safetensors(path, size)
                sources.append(path)
            print(f"publishing a version with {', '.join(names.values())} through the API ...", file=sys.stderr)
            start = time.perf_counter()
            version = ours.publish(sources)
            print(f"  v{version['number']} live in {time.perf_counter() - start:.1f}s", file=sys.stderr)
            published = {f["path"]: f for f in version["files"]}
            for source in sources:
                source.unlink()  # served from the media folder from now on
            stored = {kind: next((stack.dir / "media").rglob(names[kind])) for kind in sizes}
            for kind, path in stored.items():
                if path.stat().st_size != sizes[kind] or published[names[kind]]["size"] != sizes[kind]:
                    raise RuntimeError(f"{names[kind]} stored with {path.stat().st_size} bytes")
            media = stack.dir / "media"

            x_accel_port = free_port()
            nginx = Nginx(stack, nginx_bin, x_accel_port)
            x_accel = None
            if not args.no_x_accel:
                x_accel = ours.gunicorn("gunicorn-x-accel", x_accel_port, args.workers,
                                        extra_env={"DOWNLOAD_X_ACCEL_REDIRECT_PREFIX": "/_media/"})

            # the bytes we serve are the bytes published: hash the smaller file as downloaded
            digest = hashlib.sha256()
            url = ours.resolve_url(ours.endpoint, version["number"], names["small"])
            with requests.get(url, headers={"Authorization": f"Bearer {ours.licensed_token}"}, stream=True, timeout=900) as response:
                response.raise_for_status()
                for block in response.iter_content(4 * MiB):
                    digest.update(block)
            bytes_ok = digest.hexdigest() == published[names["small"]]["sha256"]
            refused = requests.head(ours.resolve_url(ours.endpoint, version["number"], names["small"]),
                                    headers={"Authorization": f"Bearer {ours.seed['unlicensed_token']}"}, timeout=60).status_code

            plan = []
            for kind in ("large", "small"):
                static = f"http://127.0.0.1:{nginx.port}/static/{stored[kind].relative_to(media)}"
                plan.append(("nginx", kind, lambda s=static, k=kind: curl_download(s, sizes[k], nginx.workers())))
                plan.append(("ours", kind, lambda k=kind: curl_download(
                    ours.resolve_url(ours.endpoint, version["number"], names[k]), sizes[k], children_of(ours.proc.pid), ours.licensed_token)))
                if x_accel is not None:
                    plan.append(("x_accel", kind, lambda k=kind: curl_download(
                        ours.resolve_url(f"http://127.0.0.1:{nginx.proxy_port}", version["number"], names[k]), sizes[k],
                        children_of(x_accel.pid) + nginx.workers(), ours.licensed_token)))
            print(f"downloading, {args.repeat} rounds ...", file=sys.stderr)
            for _ in range(args.repeat):
                for row, kind, measure in plan:
                    runs.setdefault((row, kind), []).append(measure())
        except Exception:
            for name in ("gunicorn", "gunicorn-x-accel", "nginx", "anvil"):
                tail = stack.log_tail(name)
                if tail:
                    print(f"--- {name} log ---\n{tail}", file=sys.stderr)
            raise

    result = {key: best(values) for key, values in runs.items()}
    rate = lambda r, kind: sizes[kind] / r["seconds"] / 1e6  # noqa: E731
    label = {
        "nginx": "nginx static location, sendfile on (anchor)",
        "ours": f"gunicorn -w {args.workers} (sync): resolve with licence check, FileResponse/sendfile",
        "x_accel": "nginx -> gunicorn, licence check, X-Accel-Redirect (nginx sends the bytes)",
    }
    rows = [r for r in ("nginx", "ours", "x_accel") if (r, "large") in result]
    print(f"{note}; {os.cpu_count()} cores; best of {args.repeat} runs each; DEBUG off, SQLite, curl -o /dev/null over loopback\n")
    print(f"| download of {args.size_mib} MiB | seconds | MB/s | × nginx | first byte (ms) | RSS before (MB) | peak RSS sampled (MB) | VmHWM (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    anchor = rate(result[("nginx", "large")], "large")
    for row in rows:
        r = result[(row, "large")]
        print(f"| {label[row]} | {r['seconds']:.2f} | {rate(r, 'large'):.0f} | {rate(r, 'large') / anchor:.2f} "
              f"| {r['first_s'] * 1000:.1f} | {r['before_mb']:.0f} | {r['sampled_mb']:.0f} | {r['hwm_mb']:.0f} |")
    print()
    print(f"| peak RSS of the serving processes, sampled VmRSS / VmHWM (MB) | {args.small_mib} MiB file | {args.size_mib} MiB file | growth (VmHWM) |")
    print("|---|---:|---:|---:|")
    for row in rows:
        small, large = result[(row, "small")], result[(row, "large")]
        print(f"| {label[row]} | {small['sampled_mb']:.0f} / {small['hwm_mb']:.0f} "
              f"| {large['sampled_mb']:.0f} / {large['hwm_mb']:.0f} | {large['hwm_mb'] - small['hwm_mb']:+.1f} |")
    print()
    print(f"| throughput, {args.small_mib} MiB file | seconds | MB/s | × nginx |")
    print("|---|---:|---:|---:|")
    small_anchor = rate(result[("nginx", "small")], "small")
    for row in rows:
        r = result[(row, "small")]
        print(f"| {label[row]} | {r['seconds']:.3f} | {rate(r, 'small'):.0f} | {rate(r, 'small') / small_anchor:.2f} |")
    print()
    print(f"{'PASS' if bytes_ok else 'MISS'}  the {args.small_mib} MiB file downloaded through resolve has the published sha256")
    print(f"{'PASS' if refused == 403 else 'MISS'}  a token without a licence is refused (HEAD answered {refused})")
    for row in [r for r in rows if r != "nginx"]:
        ratio = rate(result[(row, "large")], "large") / anchor
        print(f"{'PASS' if ratio >= 0.8 else 'MISS'}  {label[row]} >= 0.8x nginx ({ratio:.2f}x)")
        growth = result[(row, "large")]["hwm_mb"] - result[(row, "small")]["hwm_mb"]
        print(f"{'PASS' if growth <= FLAT_MB else 'MISS'}  {row}: peak RSS flat in file size "
              f"({args.small_mib} -> {args.size_mib} MiB: {growth:+.1f} MB, limit +{FLAT_MB} MB)")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
