#!/usr/bin/env python
"""A large resumable upload by the CLI's own tus uploader beside `curl -T` to nginx, over loopback.

The CLI's uploader (hallmark.upload, what `hallmark publish` runs) and, for context, tuspy send
one file to our tus endpoint on gunicorn; the anchor is `curl -T` to nginx's WebDAV PUT. One run.

    make bench-deps                                   # nginx (with the DAV module), curl
    .venv/bin/python bench/upload.py                  # 1 GiB file
    .venv/bin/python bench/upload.py --size-mib 128   # a quick try

Everything is thrown away afterwards: a temp directory holds a SQLite database, the media
folder, an anvil chain with ModelRegistry deployed, nginx's config, temp files and pid file.
Our side: `manage.py seed_demo` creates a vendor and a live model, a draft version is created
through the REST API, and gunicorn (`config.wsgi`, `--workers` sync workers, DEBUG off) serves
the tus endpoint. The CLI's uploader (`hallmark.upload.upload_file`) sends the file as
`hallmark publish` does: 16 MiB chunks, each with `Upload-Checksum: sha256`, the file's SHA-256
computed from the same bytes, each byte read once (the row the target is about). For context,
tuspy uploads the file in `--chunk-mib` chunks and in one chunk (the whole
file), and once more with `Upload-Checksum: sha256` per chunk (context: the server then hashes
every byte too); for context also curl sends the whole file as one tus PATCH (our server
without tuspy's cost: tuspy reads each chunk into memory before `requests` sends it). The anchor: nginx with `dav_methods PUT` writing into the temp dir, fed by
`curl -T` (no `Expect: 100-continue`, as tuspy sends none).

Timings: ours from the tus creation POST to the last PATCH's answer, measured around
`Uploader.upload()` in this process; nginx's is curl's `time_total`. Each is the best of
`--repeat` runs (default 2), interleaved; `sync` runs before each so no run pays for the last
one's dirty pages. Note that our server fsyncs each chunk before it acknowledges the new
offset (tus needs the offset to be durable); nginx does not fsync, so a context row adds an
fsync of nginx's stored file to its time. Server peak RSS is VmHWM of
the gunicorn worker(s) (and of the nginx worker), reset before each upload; "RSS before" is
the largest worker's resident size just before it.
Target: the CLI's uploader (checksums and the file's SHA-256 included) >= 0.8x nginx throughput.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from _stack import (  # noqa: E402
    Stack,
    children_of,
    cleanup_on_sigterm,
    cpu_seconds,
    free_port,
    load_note,
    proc_status_kb,
    reset_peak_rss,
    wait_http,
)
from tusclient import client as tus  # noqa: E402
from tusclient.uploader import Uploader  # noqa: E402

from hallmark.upload import CHUNK_SIZE, upload_file  # noqa: E402

MiB = 1024**2
MODEL = "tiny-llama-gguf"

NGINX_CONF = """\
{user}worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            root {dir}/dav;
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
            client_body_buffer_size 64m;
        }}
    }}
}}
"""


class Sha256Uploader(Uploader):
    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(8 * MiB, left)
            fh.write(os.urandom(n))
            left -= n


def sha256_rate() -> float:
    """MB/s of one SHA-256 stream over 64 MiB in memory, the best of three."""
    data = os.urandom(64 * MiB)
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        hashlib.sha256(data).digest()
        seconds.append(time.perf_counter() - start)
    return len(data) / min(seconds) / 1e6


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def peak_mb(pids: list[int], key: str = "VmHWM") -> float | None:
    values = [v for v in (proc_status_kb(p, key) for p in pids) if v is not None]
    return max(values) / 1024 if values else None


class Nginx:
    def __init__(self, stack: Stack, binary: str):
        self.dir = stack.dir / "nginx"
        for sub in ("dav", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / sub).mkdir(parents=True)
        self.port = free_port()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, dir=self.dir, port=self.port))
        self.proc = stack.spawn("nginx", [binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf), "-g", "daemon off;"])
        wait_http(f"http://127.0.0.1:{self.port}/", self.proc)

    def workers(self) -> list[int]:
        return children_of(self.proc.pid)

    def upload(self, source: Path, size: int, durable: bool = False) -> dict:
        """curl's time_total; with `durable`, plus the time to fsync the stored file afterwards
        (our server fsyncs every chunk before it acknowledges it: nginx's PUT never fsyncs)."""
        target = self.dir / "dav" / "big.gguf"
        target.unlink(missing_ok=True)
        workers = self.workers()
        before = peak_mb(workers, "VmRSS")
        reset_peak_rss(workers)
        os.sync()
        out = subprocess.run(
            ["curl", "-sS", "-f", "-H", "Expect:", "-T", str(source), f"http://127.0.0.1:{self.port}/big.gguf",
             "-o", "/dev/null", "-w", "%{http_code} %{time_total}"],
            check=True, capture_output=True, text=True,
        )
        code, seconds = out.stdout.split()
        if code not in ("201", "204") or target.stat().st_size != size:
            raise RuntimeError(f"nginx PUT answered {code}, stored {target.stat().st_size} bytes of {size}")
        total = float(seconds)
        if durable:
            start = time.perf_counter()
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            total += time.perf_counter() - start
        target.unlink()
        return {"seconds": total, "peak_mb": peak_mb(workers), "before_mb": before}


class Marketplace:
    def __init__(self, stack: Stack, workers: int):
        self.stack = stack
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        stack.env["PUBLIC_BASE_URL"] = self.endpoint
        stack.env["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
        stack.start_chain()
        seed = json.loads(stack.manage("seed_demo", "--json").strip().splitlines()[-1])
        self.token = seed["vendor_token"]
        self.auth = {"Authorization": f"Bearer {self.token}"}
        self.proc = stack.spawn("gunicorn", [
            sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
            "--timeout", "900", "--graceful-timeout", "5",
        ])
        wait_http(f"{self.endpoint}/api/v1/vendor/models", self.proc, timeout=60)
        response = requests.post(f"{self.endpoint}/api/v1/vendor/models/{MODEL}/versions", json={}, headers=self.auth, timeout=60)
        response.raise_for_status()
        self.version = response.json()["id"]
        self.creation_url = f"{self.endpoint}/api/v1/vendor/models/{MODEL}/versions/{self.version}/uploads"
        self.uploads = 0
        self.source_sha256 = ""

    def workers(self) -> list[int]:
        return children_of(self.proc.pid)

    def upload(self, source: Path, size: int, chunk: int, checksum: bool = False) -> dict:
        self.uploads += 1
        name = f"big-{self.uploads}.gguf"
        client = tus.TusClient(self.creation_url, headers=self.auth)
        kind = Sha256Uploader if checksum else Uploader
        workers = self.workers()
        before = peak_mb(workers, "VmRSS")
        reset_peak_rss(workers)
        os.sync()
        start = time.perf_counter()
        uploader = kind(file_path=str(source), client=client, chunk_size=chunk, metadata={"filename": name}, upload_checksum=checksum)
        uploader.upload()
        seconds = time.perf_counter() - start
        peak = peak_mb(workers)
        files = requests.get(f"{self.endpoint}/api/v1/vendor/models/{MODEL}/versions/{self.version}", headers=self.auth, timeout=60).json()["files"]
        stored = {f["path"]: f["size"] for f in files}
        if stored.get(name) != size:
            raise RuntimeError(f"the version lists {name} with size {stored.get(name)}, not {size}")
        for path in (self.stack.dir / "media" / "artifacts").rglob(name):  # keep the disk use to one copy
            path.unlink()
        return {"seconds": seconds, "peak_mb": peak, "before_mb": before}


    def upload_cli(self, source: Path, size: int) -> dict:
        """The CLI's uploader, as `hallmark publish` runs it: checksummed chunks, the file's
        SHA-256 computed while it sends (checked here against a digest taken beforehand)."""
        self.uploads += 1
        name = f"big-{self.uploads}.gguf"
        workers = self.workers()
        before = peak_mb(workers, "VmRSS")
        reset_peak_rss(workers)
        os.sync()
        start = time.perf_counter()
        result = upload_file(self.creation_url, self.token, source, name, stored_url=None, remember=lambda url: None, progress=False)
        seconds = time.perf_counter() - start
        peak = peak_mb(workers)
        if result.sha256 != self.source_sha256 or result.size != size:
            raise RuntimeError(f"the uploader computed {result.sha256} ({result.size} bytes), not {self.source_sha256}")
        for path in (self.stack.dir / "media" / "artifacts").rglob(name):
            if path.stat().st_size != size:
                raise RuntimeError(f"{name} stored with {path.stat().st_size} bytes, not {size}")
            path.unlink()
        return {"seconds": seconds, "peak_mb": peak, "before_mb": before}

    def upload_curl(self, source: Path, size: int) -> dict:
        """The same tus upload in one PATCH sent by curl: our server without tuspy's client cost."""
        self.uploads += 1
        name = f"big-{self.uploads}.gguf"
        workers = self.workers()
        before = peak_mb(workers, "VmRSS")
        reset_peak_rss(workers)
        os.sync()
        start = time.perf_counter()
        created = requests.post(self.creation_url, headers={
            **self.auth, "Tus-Resumable": "1.0.0", "Upload-Length": str(size),
            "Upload-Metadata": "filename " + base64.b64encode(name.encode()).decode(),
        }, timeout=60)
        created.raise_for_status()
        post_seconds = time.perf_counter() - start
        out = subprocess.run(
            ["curl", "-sS", "-f", "-X", "PATCH", "-H", "Expect:", "-H", f"Authorization: Bearer {self.token}",
             "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0", "-H", "Content-Type: application/offset+octet-stream",
             "-T", str(source), created.headers["Location"], "-o", "/dev/null", "-w", "%{http_code} %{time_total}"],
            check=True, capture_output=True, text=True,
        )
        code, seconds = out.stdout.split()
        if code != "204":
            raise RuntimeError(f"tus PATCH by curl answered {code}")
        peak = peak_mb(workers)
        for path in (self.stack.dir / "media" / "artifacts").rglob(name):
            if path.stat().st_size != size:
                raise RuntimeError(f"{name} stored with {path.stat().st_size} bytes, not {size}")
            path.unlink()
        return {"seconds": post_seconds + float(seconds), "peak_mb": peak, "before_mb": before}


def client_cpu_seconds() -> float:
    """CPU time of this process (the Python uploaders, all threads) and its finished children (curl)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def with_cpu(measure, server_pids) -> dict:
    """`measure()`'s result, with the CPU seconds the client and the server spent on it: a figure
    a busy machine changes far less than the wall-clock time (what the work costs, not how long
    it waited for a core)."""
    pids = server_pids()
    client, server = client_cpu_seconds(), cpu_seconds(pids)
    result = measure()
    result["client_cpu"] = client_cpu_seconds() - client
    result["server_cpu"] = cpu_seconds(pids) - server
    return result


def best(results: list[dict]) -> dict:
    """The fastest run's time and CPU; the largest peak and the smallest resident size before, over all runs."""
    fastest = min(results, key=lambda r: r["seconds"])
    peaks = [r["peak_mb"] for r in results if r["peak_mb"] is not None]
    befores = [r["before_mb"] for r in results if r["before_mb"] is not None]
    return {"seconds": fastest["seconds"], "peak_mb": max(peaks) if peaks else None, "before_mb": min(befores) if befores else None,
            "client_cpu": fastest["client_cpu"], "server_cpu": fastest["server_cpu"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the uploaded file in MiB (default 1024)")
    parser.add_argument("--chunk-mib", type=int, default=64, help="tuspy chunk size in MiB (default 64); the whole file is also tried")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best is kept (default 2)")
    parser.add_argument("--no-checksum", action="store_true", help="skip the context run of tuspy with Upload-Checksum")
    parser.add_argument("--no-tuspy", action="store_true", help="skip the tuspy context rows (the CLI's uploader and the anchors only)")
    parser.add_argument("--tmp", default=None, help="parent of the temp directory (default: the system temp dir)")
    args = parser.parse_args()
    nginx_bin = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx_bin is None or shutil.which("curl") is None:
        print("nginx or curl is not installed: run `make bench-deps` (Debian: apt-get install nginx curl)", file=sys.stderr)
        return 0
    size = args.size_mib * MiB
    chunk = min(args.chunk_mib * MiB, size)
    cleanup_on_sigterm()
    note = load_note()
    runs: dict[str, list[dict]] = {}
    with Stack(prefix="hallmark-bench-upload-", tmp_parent=args.tmp, keep=bool(os.environ.get("BENCH_KEEP"))) as stack:
        free = shutil.disk_usage(stack.dir).free
        if free < 3 * size + 1024 * MiB:
            print(f"not enough space in {stack.dir}: need about {3 * size / MiB + 1024:.0f} MiB", file=sys.stderr)
            return 0
        source = stack.dir / "big.gguf"
        print(f"writing {size / MiB:.0f} MiB of random bytes, starting anvil, gunicorn and nginx in {stack.dir} ...", file=sys.stderr)
        write_random(source, size)
        try:
            nginx = Nginx(stack, nginx_bin)
            ours = Marketplace(stack, args.workers)
            ours.source_sha256 = file_sha256(source)
            plan = [
                ("anchor", lambda: nginx.upload(source, size)),
                ("durable", lambda: nginx.upload(source, size, durable=True)),
                ("cli", lambda: ours.upload_cli(source, size)),
                ("curl", lambda: ours.upload_curl(source, size)),
            ]
            if not args.no_tuspy:
                plan.append(("chunked", lambda: ours.upload(source, size, chunk)))
                plan.append(("whole", lambda: ours.upload(source, size, size)))
                if not args.no_checksum:
                    plan.append(("checksum", lambda: ours.upload(source, size, chunk, checksum=True)))
            for _ in range(args.repeat):
                for key, measure in plan:
                    servers = nginx.workers if key == "anchor" else ours.workers
                    runs.setdefault(key, []).append(with_cpu(measure, servers))
        except Exception:
            for name in ("gunicorn", "nginx", "anvil"):
                tail = stack.log_tail(name)
                if tail:
                    print(f"--- {name} log ---\n{tail}", file=sys.stderr)
            raise

    result = {key: best(values) for key, values in runs.items()}
    rate = lambda r: size / r["seconds"] / 1e6  # noqa: E731
    anchor = rate(result["anchor"])
    label = {
        "anchor": "curl -T -> nginx dav_methods PUT (anchor)",
        "durable": "curl -T -> nginx, then fsync of the stored file (context: as durable as ours)",
        "cli": f"hallmark CLI uploader -> gunicorn, {CHUNK_SIZE // MiB} MiB chunks + Upload-Checksum sha256 + file SHA-256, read once",
        "chunked": f"tuspy -> gunicorn, {chunk // MiB} MiB chunks",
        "whole": f"tuspy -> gunicorn, one {size // MiB} MiB chunk",
        "curl": "curl -T (one tus PATCH) -> gunicorn (context: our server without tuspy)",
        "checksum": f"tuspy -> gunicorn, {chunk // MiB} MiB chunks + Upload-Checksum sha256 (context)",
    }
    print(f"{note}; {os.cpu_count()} cores; best of {args.repeat} runs each; gunicorn -w {args.workers} (sync), DEBUG off, SQLite\n")
    print(f"| upload of {size / MiB:.0f} MiB over loopback | seconds | MB/s | × nginx | CPU s client | CPU s server "
          "| server RSS before (MB) | server peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    mb = lambda v: f"{v:.0f}" if v is not None else "n/a"  # noqa: E731
    for key, values in result.items():
        print(f"| {label[key]} | {values['seconds']:.2f} | {rate(values):.0f} | {rate(values) / anchor:.2f} "
              f"| {values['client_cpu']:.2f} | {values['server_cpu']:.2f} | {mb(values['before_mb'])} | {mb(values['peak_mb'])} |")
    print()
    ratio = rate(result["cli"]) / anchor
    print(f"{'PASS' if ratio >= 0.8 else 'MISS'}  {label['cli']} >= 0.8x nginx ({ratio:.2f}x)")
    ceiling = sha256_rate()
    print(f"context: one SHA-256 stream (hashlib, in memory) here: {ceiling:.0f} MB/s = {ceiling / anchor:.2f}x nginx; the file's "
          "SHA-256 is one stream, so no uploader that hashes the file as it sends it can pass that")
    bound = cpu_bound(size, ceiling, result["anchor"], os.cpu_count() or 1)
    print(f"context: the work no uploader of this protocol can skip is {bound['cpu']:.2f} CPU s here: three SHA-256 passes "
          f"({bound['hash']:.2f} s: the file's digest and the segment digests the signed manifest holds, on the client; the "
          f"server's check of each chunk's Upload-Checksum) and the copies nginx and curl spent ({bound['copy']:.2f} s). "
          f"On {bound['cores']} cores that takes at least {bound['seconds']:.2f} s: at best {size / bound['seconds'] / 1e6 / anchor:.2f}x "
          "nginx on this machine, with client and server sharing its cores")
    return 0


def cpu_bound(size: int, sha256_mb_s: float, nginx: dict, cores: int) -> dict:
    """The least wall time any uploader of our protocol needs here: three SHA-256 passes over the
    file (two on the client, one on the server) plus the copy work the anchor's client and server
    spent (our transfer cannot copy less), spread perfectly over the cores both sides share, and
    never less than one SHA-256 stream (the file digest is sequential)."""
    hashing = 3 * size / (sha256_mb_s * 1e6)
    copy = nginx["client_cpu"] + nginx["server_cpu"]
    cpu = hashing + copy
    seconds = max(cpu / cores, size / (sha256_mb_s * 1e6))
    return {"hash": hashing, "copy": copy, "cpu": cpu, "cores": cores, "seconds": seconds}


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
