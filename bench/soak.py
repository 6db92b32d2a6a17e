#!/usr/bin/env python
"""The scale-out soak: the production shape on one machine under downloads, purchases, publishes
and a Celery worker killed every minute; then what must hold after it (issue 20).

    make bench-deps                                              # nginx, curl
    .venv/bin/python bench/soak.py --duration 60 --downloaders 20   # a quick try
    .venv/bin/python bench/soak.py                               # 10 minutes, 200 downloaders

The shape (everything in a temp directory, thrown away at the end; `--keep` keeps the logs):

- PostgreSQL: a throw-away database (`--database`, default hallmark_soak_bench, created with
  createdb and dropped at the end), connections kept open (`conn_max_age=600`, as docs/operations.md
  says); Redis db `--redis-db` (default 4, flushed first) as broker and cache.
- An S3 server: `moto_server` (from requirements.txt) in its own process, `STORAGE_BACKEND=s3`:
  vendors' uploads go to the bucket, hashing reads them back from it.
- Two gunicorn instances (`deploy/gunicorn.conf.py`, sync workers, `--web-workers` each, default the
  config's own 2 x cores + 1) behind one nginx (upstream keepalive). Downloads use X-Accel-Redirect
  (`DOWNLOAD_X_ACCEL_REDIRECT_PREFIX=/_s3/`): Django checks the licence, records the Download and
  its Receipt, and nginx fetches the bytes (with the client's Range) from the bucket through an
  internal location that proxies to the S3 server. So the issue's combination holds: S3 storage
  *and* X-Accel (the storage's presigned 302 is the path without nginx: not measured here). The
  internal location sends no credentials: the bucket's policy lets anonymous readers get objects
  (in production, a policy conditioned on the proxy's network or VPC endpoint; nginx cannot sign).
- Two Celery workers (`celery -A config worker`, default concurrency) and one beat, all on Redis.
- anvil mining a block every 2 s (`--block-time 2`), CONFIRMATIONS=2, the registry deployed.

Setup through the public API, as users do: `seed_demo` (the demo vendor, its model, a buyer), then
two more models by the vendor (one derived from the other with a royalty share), a first version
of each with a `--file-mib` safetensors file; `--downloaders` buyers each sign in with Ethereum
(`/api/v1/auth/nonce`, `/auth/siwe`: a fresh key funded with `anvil_setBalance`), ask for the
purchase transaction (`GET .../purchase`), sign it in their own wallet, send it to the node and
report it (`POST /api/v1/purchases`).

For `--duration` seconds (default 600):

- `--downloaders` concurrent downloaders (asyncio + aiohttp, in a child process of their own so
  the load generator's CPU is measured apart): each loops `HEAD` then a ranged `GET` (a random
  `--range-kib` window) of `resolve/main/model.safetensors` of the model it bought;
- `--purchases-per-min` (default 50) purchases by fresh buyers (sign-in, purchase transaction,
  sent, mined, reported), each followed by ranged GETs until the first one is granted: the time
  from the moment the client saw the receipt (polled every 0.25 s) to that first granted GET;
- `--publishes-per-min` (default 5) new versions of the three models (draft, `PUT` of the file
  through nginx to S3, finalize, hashing by a worker, the vendor's EIP-712 signature, relayed);
- every `--kill-every` s (default 60) one Celery worker (alternately) is killed with SIGKILL (its
  whole process group: pool children and a hashing sandbox too) and started again at once.

Then the load stops, the system is given up to `--settle` s to finish (the indexer mirrors the last
purchases, hashing and anchoring lost with a killed worker is re-queued by beat), and the checks
run in this process against the database and the chain: every version live exactly once (the
chain's `latestVersion` and `versionDigest`, one confirmed `publishVersionBySig` each), every
purchase mirrored (a License row per mined purchase), ledger = `creditOf` for every payee, every
GET recorded (Download rows for the GETs the clients made, granted ones with a Receipt each).

Printed: requests/s, p50/p99 per endpoint, answers by status, the longest time from a purchase
mined to its first granted download, database connections (sampled every 2 s), CPU seconds per
component (the load generator too: on 2 cores it competes with the servers), PASS/MISS per check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

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
    postgres_reachable,
    rpc,
    throwaway_postgres,
    wait_http,
)
from download import write_safetensors  # noqa: E402
from eth_account import Account  # noqa: E402

MiB = 1024**2
BUCKET = "hallmark-soak"
FILE_NAME = "model.safetensors"
DEV_MNEMONIC = "test test test test test test test test test test test junk"
VENDOR = "hallmark-demo"
CONFIRMATIONS = 2

NGINX_CONF = """\
{user}worker_processes auto;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream hallmark {{
        server 127.0.0.1:{web_a};
        server 127.0.0.1:{web_b};
        keepalive 32;
    }}
    upstream storage {{
        server 127.0.0.1:{s3_port};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        client_max_body_size 0;
        # the licence was checked by Django: nginx fetches the bytes (Range included) from the bucket
        location /_s3/ {{
            internal;
            proxy_pass http://storage/{bucket}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:{s3_port};
            proxy_set_header Authorization "";
            proxy_set_header Cookie "";
        }}
        location / {{
            proxy_pass http://hallmark;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def dev_key(index: int) -> str:
    Account.enable_unaudited_hdwallet_features()
    return "0x" + Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex().removeprefix("0x")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------------- process CPU


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        todo.extend(children_of(current))
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# ------------------------------------------------------------------------------- recording


class Recorder:
    """Every answer the clients got: (endpoint, status, seconds), thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[tuple[str, int, float]] = []

    def add(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.rows.append((endpoint, status, seconds))


class Api:
    """requests against nginx with one bearer token; each call recorded under `endpoint`."""

    def __init__(self, base: str, recorder: Recorder, token: str | None = None):
        self.base, self.recorder = base, recorder
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, endpoint: str, method: str, path: str, *, expect=(200, 201, 202), **kwargs) -> requests.Response:
        for attempt in range(30):
            started = time.perf_counter()
            try:
                response = self.session.request(method, self.base + path, timeout=120, allow_redirects=False, **kwargs)
            except requests.RequestException:
                self.recorder.add(endpoint, 0, time.perf_counter() - started)
                time.sleep(0.5)
                continue
            self.recorder.add(endpoint, response.status_code, time.perf_counter() - started)
            if response.status_code in expect:
                return response
            if response.status_code in (429, 502, 503, 504) and attempt < 29:
                time.sleep(float(response.headers.get("Retry-After") or 1))
                continue
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        raise RuntimeError(f"{method} {path}: no answer after 30 attempts")


# ------------------------------------------------------------------------------- users


class Chain:
    """The node, for buyers' own wallets (they pay straight to it, not through the marketplace)."""

    def __init__(self, rpc_url: str):
        self.rpc_url = rpc_url
        self.lock = threading.Lock()

    def fund(self, address: str) -> None:
        rpc(self.rpc_url, "anvil_setBalance", [address, hex(10 * 10**18)])

    def pay(self, transaction: dict, key: str) -> str:
        account = Account.from_key(key)
        nonce = int(rpc(self.rpc_url, "eth_getTransactionCount", [account.address, "pending"]), 16)
        call = {"from": account.address, "to": transaction["to"], "data": transaction["data"], "value": transaction["value"]}
        gas = int(rpc(self.rpc_url, "eth_estimateGas", [call]), 16)
        base = int(rpc(self.rpc_url, "eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
        tx = {
            "to": transaction["to"], "data": transaction["data"], "value": int(transaction["value"], 16),
            "chainId": int(transaction["chainId"]), "nonce": nonce, "gas": gas * 12 // 10,
            "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9, "type": 2,
        }
        signed = account.sign_transaction(tx)
        return rpc(self.rpc_url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex().removeprefix("0x")])

    def receipt(self, tx_hash: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = rpc(self.rpc_url, "eth_getTransactionReceipt", [tx_hash])
            if found:
                return found
            time.sleep(0.25)
        raise RuntimeError(f"{tx_hash} not mined in {timeout:.0f}s")


def sign_in(base: str, recorder: Recorder, key: str) -> str:
    """Sign-In with Ethereum through the API: a new account with this wallet, and its API token."""
    from hallmark.siwe import sign_message, siwe_message

    api = Api(base, recorder)
    nonce = api.call("POST /auth/nonce", "POST", "/api/v1/auth/nonce", expect=(201,)).json()
    text = siwe_message(domain=nonce["domain"], address=Account.from_key(key).address, uri=nonce["uri"],
                        chain_id=nonce["chain_id"], nonce=nonce["nonce"])
    answer = api.call("POST /auth/siwe", "POST", "/api/v1/auth/siwe", expect=(201,),
                      json={"message": text, "signature": sign_message(text, key), "token_name": "soak"})
    return answer.json()["token"]


class Buyer:
    def __init__(self, base: str, recorder: Recorder, chain: Chain, repo: str):
        self.key = "0x" + os.urandom(32).hex()
        self.address = Account.from_key(self.key).address
        self.repo = repo
        chain.fund(self.address)
        self.token = sign_in(base, recorder, self.key)
        self.api = Api(base, recorder, self.token)

    def buy(self, chain: Chain) -> dict:
        """The purchase transaction from the API, paid from the buyer's wallet, reported back."""
        tx = self.api.call("GET /models/…/purchase", "GET", f"/api/v1/models/{self.repo}/purchase").json()["transaction"]
        tx_hash = chain.pay(tx, self.key)
        mined = chain.receipt(tx_hash)
        seen = time.monotonic()
        if int(mined["status"], 16) != 1:
            raise RuntimeError(f"purchase {tx_hash} reverted")
        self.api.call("POST /purchases", "POST", "/api/v1/purchases", json={"tx_hash": tx_hash})
        return {"tx_hash": tx_hash, "block": int(mined["blockNumber"], 16), "seen": seen, "licensee": self.address, "repo": self.repo}


# ------------------------------------------------------------------------------- downloaders


def downloaders_main(targets: list[tuple[str, str]], duration: float, range_kib: int, size: int, out) -> None:
    """Child process: one asyncio task per (url, token), HEAD + ranged GET in a loop."""
    import aiohttp

    async def one(session, url: str, token: str, deadline: float, rows: list, rng: random.Random) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
        window = range_kib * 1024
        while time.monotonic() < deadline:
            for method in ("HEAD", "GET"):
                extra = {}
                if method == "GET":
                    start = rng.randrange(0, max(1, size - window))
                    extra = {"Range": f"bytes={start}-{start + window - 1}"}
                started = time.perf_counter()
                try:
                    async with session.request(method, url, headers={**headers, **extra}, allow_redirects=False) as response:
                        got = 0
                        async for block in response.content.iter_chunked(256 * 1024):
                            got += len(block)
                        status = response.status
                        if method == "GET" and status == 206 and got != window:
                            status = 999  # a short body: counted as an error
                        # an error without the marketplace's X-Error-Code came from nginx or the bucket
                        source = "" if status < 400 or "X-Error-Code" in response.headers else " [not the marketplace]"
                except (TimeoutError, aiohttp.ClientError):
                    status, source = 0, ""
                rows.append((f"{method} resolve{source}", status, time.perf_counter() - started))
                if status in (0, 429, 502, 503, 504):
                    await asyncio.sleep(0.5)

    async def run() -> list:
        rows: list = []
        deadline = time.monotonic() + duration
        connector = aiohttp.TCPConnector(limit=len(targets) + 8, force_close=False)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
            await asyncio.gather(*(one(session, url, token, deadline, rows, random.Random(i))
                                   for i, (url, token) in enumerate(targets)))
        return rows

    started = time.monotonic()
    rows = asyncio.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put({"rows": rows, "cpu": usage.ru_utime + usage.ru_stime, "wall": time.monotonic() - started})


# ------------------------------------------------------------------------------- the soak


class Soak:
    def __init__(self, args, stack: Stack, database_url: str, redis_url: str):
        self.args, self.stack, self.redis_url = args, stack, redis_url
        self.recorder = Recorder()
        self.errors: list[str] = []
        self.purchases: list[dict] = []
        self.first_grant: list[float] = []
        self.publishes: list[dict] = []
        self.kills: list[str] = []
        self.client_gets = Counter()  # status of every GET of a file the clients made (outside the downloader process)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.database = urlparse(database_url).path.lstrip("/")
        s3_port, self.nginx_port = free_port(), free_port()
        self.web_ports = (free_port(), free_port())
        self.base = f"http://127.0.0.1:{self.nginx_port}"
        self.s3_endpoint = f"http://127.0.0.1:{s3_port}"
        self.metrics = {name: stack.dir / f"metrics-{name}" for name in ("a", "b")}
        for path in self.metrics.values():
            path.mkdir()
        stack.env.update(
            DATABASE_URL=database_url + "?conn_max_age=600",
            REDIS_URL=redis_url,
            CELERY_TASK_ALWAYS_EAGER="0",
            CONFIRMATIONS=str(CONFIRMATIONS),
            STORAGE_BACKEND="s3", S3_BUCKET=BUCKET, S3_ENDPOINT_URL=self.s3_endpoint,
            S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test", S3_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
            DOWNLOAD_X_ACCEL_REDIRECT_PREFIX="/_s3/",
            PUBLIC_BASE_URL=self.base, ALLOWED_HOSTS="127.0.0.1,localhost", TRUSTED_PROXIES="127.0.0.1",
            LOG_LEVEL="WARNING",
        )
        self.s3_port = s3_port
        self.celery: list[subprocess.Popen | None] = [None, None]
        self.generation = [0, 0]

    # ---- processes

    def start(self) -> None:
        stack, args = self.stack, self.args
        moto = stack.spawn("moto", [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.s3_port)])
        wait_http(self.s3_endpoint + "/", moto)
        import boto3

        boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=BUCKET)
        # nginx's internal location reads objects without credentials: the bucket lets anyone it
        # can reach read them (in production: a policy conditioned on the proxy's network)
        boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({
                         "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                                 "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}))
        print("anvil (a block every 2 s), migrate, deploy ...", file=sys.stderr)
        stack.start_chain("--block-time", "2")
        print("seed_demo ...", file=sys.stderr)
        eager = {**stack.env}
        stack.env["CELERY_TASK_ALWAYS_EAGER"] = "1"  # seed_demo relays inline; nothing waits in the queue
        try:
            self.seed = json.loads(stack.manage("seed_demo", "--json").strip().splitlines()[-1])
        finally:
            stack.env.clear()
            stack.env.update(eager)
        self.web = []
        for name, port in zip(("a", "b"), self.web_ports, strict=True):
            extra = {"GUNICORN_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(self.metrics[name])}
            if args.web_workers:
                extra["GUNICORN_WORKERS"] = str(args.web_workers)
            proc = stack.spawn(f"gunicorn-{name}", [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi",
                                # gunicorn 27's control socket defaults to one path per user: one each
                                "--control-socket", str(stack.dir / f"gunicorn-{name}.ctl")],
                               extra_env=extra)
            wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout=90)
            self.web.append(proc)
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        ndir = stack.dir / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (ndir / sub).mkdir(parents=True)
        conf = ndir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user="user root root;\n" if os.geteuid() == 0 else "", dir=ndir, port=self.nginx_port,
                                          web_a=self.web_ports[0], web_b=self.web_ports[1], s3_port=self.s3_port, bucket=BUCKET))
        self.nginx = stack.spawn("nginx", [nginx_bin, "-p", str(ndir), "-e", str(ndir / "error.log"), "-c", str(conf), "-g", "daemon off;"])
        wait_http(self.base + "/healthz", self.nginx)
        for i in range(2):
            self.start_worker(i)
        self.beat = stack.spawn("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "warning",
                                         "-s", str(stack.dir / "celerybeat-schedule")],
                                extra_env={"PROMETHEUS_MULTIPROC_DIR": str(self.metrics["a"])})

    def start_worker(self, i: int) -> None:
        self.generation[i] += 1
        self.celery[i] = self.stack.spawn(
            f"celery-{i}-{self.generation[i]}",
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "warning", "-n", f"soak{i}.{self.generation[i]}@%h"],
            extra_env={"PROMETHEUS_MULTIPROC_DIR": str(self.metrics["a"])}, start_new_session=True,
        )

    def kill_worker(self, i: int) -> None:
        proc = self.celery[i]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the worker, its pool and any hashing sandbox: a host lost
        proc.wait()
        self.kills.append(f"{time.strftime('%H:%M:%S')} worker {i} generation {self.generation[i]}")
        self.start_worker(i)

    # ---- catalog

    def vendor_api(self) -> Api:
        return Api(self.base, self.recorder, self.seed["vendor_token"])

    def create_models(self) -> None:
        api = self.vendor_api()
        base_slug, derived_slug = "soak-base", "soak-derived"
        for slug, extra in ((base_slug, {}), (derived_slug, {"parent": f"{VENDOR}/{base_slug}", "upstream_bps": 1500})):
            created = api.call("POST /vendor/models", "POST", "/api/v1/vendor/models", expect=(201,),
                               json={"slug": slug, "price_wei": str(10**15), "license_duration": 30 * 86400, **extra}).json()
            from hallmark import eip712

            api.call("POST /vendor/models/…/signature", "POST", f"/api/v1/vendor/models/{slug}/signature",
                     json={"signature": eip712.sign_typed_data(created["typed_data"], dev_key(1))})
            self.wait_model(api, slug)
        self.models = [self.seed["repo_id"].split("/")[1], base_slug, derived_slug]
        # the demo model's versions hold the demo file: its next ones hold the soak's file
        with ThreadPoolExecutor(3) as pool:
            for result in pool.map(self.publish, self.models):
                self.publishes.append(result)

    def wait_model(self, api: Api, slug: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = api.call("GET /vendor/models/…", "GET", f"/api/v1/vendor/models/{slug}").json()["status"]
            if status == "live":
                return
            if status == "failed":
                raise RuntimeError(f"model {slug} failed")
            time.sleep(1)
        raise RuntimeError(f"model {slug} not live in {timeout:.0f}s")

    def publish(self, slug: str) -> dict:
        """A new version of `slug` through the API, as `hallmark publish` does it; returns when live."""
        from hallmark import eip712

        api = self.vendor_api()
        started = time.monotonic()
        path = self.stack.dir / f"upload-{slug}-{os.urandom(4).hex()}.safetensors"
        write_safetensors(path, self.args.file_mib * MiB)
        try:
            vid = api.call("POST /vendor/…/versions", "POST", f"/api/v1/vendor/models/{slug}/versions", expect=(201,), json={}).json()["id"]
            with open(path, "rb") as body:
                api.call("PUT /vendor/…/files/…", "PUT", f"/api/v1/vendor/models/{slug}/versions/{vid}/files/{FILE_NAME}",
                         expect=(201,), data=body, headers={"Content-Type": "application/octet-stream"})
        finally:
            path.unlink()
        api.call("POST /vendor/…/finalize", "POST", f"/api/v1/vendor/models/{slug}/versions/{vid}/finalize", expect=(200, 202))
        version = self.wait_version(api, slug, vid, {"awaiting_signature"})
        for _ in range(10):
            signed = api.call("POST /vendor/…/signature", "POST", f"/api/v1/vendor/models/{slug}/versions/{vid}/signature",
                              expect=(202, 409), json={"signature": eip712.sign_typed_data(version["typed_data"], dev_key(1))})
            if signed.status_code == 202:
                break
            # another version of the model took the number in the message: sign the fresh one
            version = api.call("GET /vendor/…/versions/…", "GET", f"/api/v1/vendor/models/{slug}/versions/{vid}").json()
        version = self.wait_version(api, slug, vid, {"live"})
        return {"slug": slug, "id": vid, "number": version["number"], "root_digest": version["root_digest"],
                "seconds": time.monotonic() - started}

    def wait_version(self, api: Api, slug: str, vid: int, wanted: set[str]) -> dict:
        deadline = time.monotonic() + self.args.settle
        while time.monotonic() < deadline:
            version = api.call("GET /vendor/…/versions/…", "GET", f"/api/v1/vendor/models/{slug}/versions/{vid}").json()
            if version["status"] in wanted:
                return version
            if version["status"] in ("rejected", "failed"):
                raise RuntimeError(f"{slug} version {vid} is {version['status']}: {version.get('error')}")
            time.sleep(1)
        raise RuntimeError(f"{slug} version {vid} not {wanted} in {self.args.settle}s")

    def resolve_url(self, slug: str) -> str:
        return f"{self.base}/{VENDOR}/{slug}/resolve/main/{FILE_NAME}"

    # ---- buyers

    def downloader_buyers(self) -> list[tuple[str, str]]:
        """One buyer per downloader (a fresh wallet, signed in, its purchase mined): (url, token)."""
        chain = Chain(self.stack.rpc_url)

        def make(i: int) -> tuple[str, str]:
            slug = self.models[i % len(self.models)]
            buyer = Buyer(self.base, self.recorder, chain, f"{VENDOR}/{slug}")
            self.purchases.append(buyer.buy(chain))
            return self.resolve_url(slug), buyer.token

        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(make, range(self.args.downloaders)))

    def buyer_get(self, buyer: Buyer, slug: str) -> int:
        """A ranged GET of the model's file with the buyer's token; its status (0: no answer)."""
        started = time.perf_counter()
        try:
            answer = buyer.api.session.get(self.resolve_url(slug), headers={"Range": "bytes=0-1023"}, timeout=60)
        except requests.RequestException:
            self.recorder.add("GET resolve (buyer)", 0, time.perf_counter() - started)
            return 0
        status = answer.status_code
        source = "" if status < 400 or "X-Error-Code" in answer.headers else " [not the marketplace]"
        self.recorder.add(f"GET resolve (buyer){source}", status, time.perf_counter() - started)
        with self.lock:
            self.client_gets[(status, bool(source))] += 1
        return status

    def one_purchase(self, chain: Chain) -> None:
        slug = random.choice(self.models)
        try:
            buyer = Buyer(self.base, self.recorder, chain, f"{VENDOR}/{slug}")
            self.buyer_get(buyer, slug)
            bought = buyer.buy(chain)
            with self.lock:
                self.purchases.append(bought)
            while True:
                if self.buyer_get(buyer, slug) in (200, 206):
                    with self.lock:
                        self.first_grant.append(time.monotonic() - bought["seen"])
                    return
                if time.monotonic() - bought["seen"] > 120:
                    raise RuntimeError(f"{bought['tx_hash']} mined, still refused after 120 s")
                time.sleep(0.1)
        except Exception as exc:  # a finding, not a crash of the soak
            self.errors.append(f"purchase: {exc}")

    def one_publish(self, slug: str) -> None:
        try:
            result = self.publish(slug)
            with self.lock:
                self.publishes.append(result)
        except Exception as exc:
            self.errors.append(f"publish {slug}: {exc}")

    # ---- the run

    def every(self, period: float, action, pool: ThreadPoolExecutor, offset: float = 0.0) -> threading.Thread:
        def loop():
            next_at = time.monotonic() + offset
            while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
                pool.submit(action)
                next_at += period
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def sample(self) -> None:
        import psycopg

        url = self.stack.env["DATABASE_URL"].split("?")[0]
        self.connections: list[int] = []
        self.connections_by_state: Counter = Counter()
        with psycopg.connect(url.replace(f"/{self.database}", "/postgres"), autocommit=True) as conn:
            while not self.stop_event.wait(2.0):
                rows = conn.execute("SELECT state, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY state",
                                    [self.database]).fetchall()
                self.connections.append(sum(n for _, n in rows))
                for state, n in rows:
                    self.connections_by_state[state or "?"] = max(self.connections_by_state[state or "?"], n)
            self.pg_pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.database]).fetchall()]

    def run(self) -> dict:
        args = self.args
        self.create_models()
        print(f"{args.downloaders} downloader buyers sign in and buy ...", file=sys.stderr)
        targets = self.downloader_buyers()
        self.setup_publishes = len(self.publishes)
        return self.load(targets)

    def load(self, targets: list[tuple[str, str]]) -> dict:
        args = self.args
        chain = Chain(self.stack.rpc_url)
        components = {"gunicorn (2 instances)": self.web, "nginx": [self.nginx], "beat": [self.beat],
                      "moto (S3)": [p for p in self.stack.children if p.args[0].endswith("moto_server")],
                      "anvil": [p for p in self.stack.children if p.args[0].endswith("anvil")]}
        cpu_before = {name: sum(tree_cpu_seconds(p.pid) for p in procs) for name, procs in components.items()}
        workers_before = sum(tree_cpu_seconds(p.pid) for p in self.celery)
        busy_before = machine_busy()
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        out = multiprocessing.get_context("fork").Queue()
        size = args.file_mib * MiB
        child = multiprocessing.get_context("fork").Process(
            target=downloaders_main, args=(targets, args.duration, args.range_kib, size, out), daemon=True)
        print(f"load for {args.duration:.0f}s: {len(targets)} downloaders, {args.purchases_per_min:g} purchases/min, "
              f"{args.publishes_per_min:g} publishes/min, a worker killed every {args.kill_every:g}s ...", file=sys.stderr)
        self.run_started_wall = time.time()
        self.mark = [len(self.recorder.rows), None]
        started = time.monotonic()
        child.start()
        sampler = threading.Thread(target=self.sample, daemon=True)
        sampler.start()
        pool = ThreadPoolExecutor(64)
        threads = [self.every(60 / args.purchases_per_min, lambda: self.one_purchase(chain), pool)]
        slugs = iter(range(10**9))
        threads.append(self.every(60 / args.publishes_per_min, lambda: self.one_publish(self.models[next(slugs) % 3]), pool, offset=2))
        killed_cpu = [0.0]
        if args.kill_every:
            turn = iter(range(10**9))

            def kill():
                i = next(turn) % 2
                killed_cpu[0] += tree_cpu_seconds(self.celery[i].pid)
                self.kill_worker(i)
            threads.append(self.every(args.kill_every, kill, ThreadPoolExecutor(1), offset=args.kill_every / 2))
        result = out.get(timeout=args.duration + 600)
        child.join(timeout=60)
        load_seconds = time.monotonic() - started
        self.mark[1] = len(self.recorder.rows)
        self.download_rows = result["rows"]
        self.stop_event.set()  # no new purchases, publishes or kills; those under way finish
        busy_after = machine_busy()
        cpu = {name: sum(tree_cpu_seconds(p.pid) for p in procs) - cpu_before[name] for name, procs in components.items()}
        cpu["celery workers (2, killed ones included)"] = sum(tree_cpu_seconds(p.pid) for p in self.celery) + killed_cpu[0] - workers_before
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu["load generator: downloaders (child)"] = result["cpu"]
        cpu["load generator: purchases, publishes (main)"] = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
        sampler.join(timeout=10)
        cpu["PostgreSQL backends of this database (at the end)"] = sum(tree_cpu_seconds(pid) for pid in getattr(self, "pg_pids", []))
        print("load over; purchases and publishes under way finish ...", file=sys.stderr)
        pool.shutdown(wait=True)
        return {"rows": result["rows"], "load_seconds": load_seconds, "cpu": cpu,
                "machine_busy": (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])}

    # ---- after the load

    def settle_and_check(self) -> list[tuple[bool, str]]:
        """Wait (at most --settle s) for the indexer and the relayer, then the checks, in this process."""
        os.environ.update(self.stack.env)
        import django

        django.setup()
        from django.db import connection

        from marketplace.models import Download, Model, Receipt, Version
        from registry import chain as chain_module
        from registry.models import ChainTransaction, IndexerCursor
        from royalties.ledger import ledger_balance
        from royalties.models import LedgerLine, License

        models = {m.slug: m for m in Model.objects.filter(vendor__slug=VENDOR, slug__in=self.models)}
        last_block = max((p["block"] for p in self.purchases), default=0)
        busy = [Version.Status.HASHING, Version.Status.PENDING_CHAIN]
        unsettled = [ChainTransaction.Status.QUEUED, ChainTransaction.Status.SIGNED]

        def mirrored() -> int:
            return sum(License.objects.filter(model_id=models[p["repo"].split("/")[1]].chain_model_id, licensee=p["licensee"]).exists()
                       for p in self.purchases)

        deadline = time.monotonic() + self.args.settle
        started = time.monotonic()
        while True:
            cursor = IndexerCursor.objects.order_by("-block_number").values_list("block_number", flat=True).first() or -1
            waiting = {
                "versions hashing or pending_chain": Version.objects.filter(model__in=models.values(), status__in=busy).count(),
                "outbox rows queued or signed": ChainTransaction.objects.filter(status__in=unsettled).count(),
                "indexer behind the last purchase": int(cursor < last_block + CONFIRMATIONS),
                "purchases not mirrored": len(self.purchases) - mirrored(),
            }
            if not any(waiting.values()) or time.monotonic() > deadline:
                break
            time.sleep(2)
        self.settle_seconds = time.monotonic() - started
        self.settle_left = {k: v for k, v in waiting.items() if v}
        connection.close()

        checks: list[tuple[bool, str]] = []
        contract = chain_module.registry_contract()
        # every version live exactly once
        live_total, wrong = 0, []
        for slug, model in models.items():
            raw_id = chain_module.to_bytes32(model.chain_model_id)
            live = list(Version.objects.filter(model=model, status=Version.Status.LIVE).order_by("number"))
            live_total += len(live)
            on_chain = contract.functions.latestVersion(raw_id).call()
            numbers = [v.number for v in live]
            if numbers != list(range(1, on_chain + 1)):
                wrong.append(f"{slug}: live numbers {numbers}, chain latestVersion {on_chain}")
            for v in live:
                if contract.functions.versionDigest(raw_id, v.number).call().hex() != v.root_digest:
                    wrong.append(f"{slug} v{v.number}: versionDigest differs from the database")
        relayed = ChainTransaction.objects.filter(function="publishVersionBySig")
        confirmed = relayed.filter(status=ChainTransaction.Status.CONFIRMED).count()
        seen_live = {(p["slug"], p["number"]) for p in self.publishes}
        missing = [f"{s} v{n}" for s, n in seen_live
                   if not Version.objects.filter(model=models[s], number=n, status=Version.Status.LIVE).exists()]
        stuck = Counter(Version.objects.filter(model__in=models.values()).exclude(status=Version.Status.LIVE).values_list("status", flat=True))
        checks.append((not wrong and not missing and confirmed == relayed.count() == live_total,
                       f"every version live exactly once: {live_total} live versions of {len(models)} models, numbers 1..latestVersion "
                       f"and versionDigest as on chain{'; ' + '; '.join(wrong) if wrong else ''}; publishVersionBySig rows "
                       f"{relayed.count()}, confirmed {confirmed}; published versions the clients saw live and not live now: "
                       f"{missing or 'none'}; other versions by status: {dict(stuck) or 'none'}"))
        # every purchase mirrored
        count = mirrored()
        checks.append((count == len(self.purchases),
                       f"every purchase mirrored: {count} of {len(self.purchases)} mined purchases have their License row"))
        # ledger = creditOf for every payee
        payees = {a.removeprefix("credit:") for a in LedgerLine.objects.filter(account__startswith="credit:").values_list("account", flat=True).distinct()}
        payees |= {self.seed["vendor_address"], self.stack.deployment.get("platform_fee_recipient") or self.seed["vendor_address"]}
        differ = {p: (ledger_balance(address=p), contract.functions.creditOf(p).call()) for p in sorted(payees)}
        differ = {p: v for p, v in differ.items() if v[0] != v[1]}
        checks.append((not differ, f"ledger = creditOf for every payee ({len(payees)} payees)"
                                   + (f"; differ (ledger, chain): {differ}" if differ else "")))
        # every GET recorded
        since = self.run_started_wall - 1
        rows = Download.objects.filter(method="GET", created_at__gte=_aware(since))
        granted_rows = rows.filter(status_code__lt=400).count()
        refused_rows = rows.filter(status_code__gte=400).count()
        receipts = Receipt.objects.filter(download__in=rows.filter(status_code__lt=400)).count()
        gets = self.get_statuses
        granted = gets[(200, False)] + gets[(206, False)]
        refused = sum(n for (status, elsewhere), n in gets.items() if 400 <= status < 500 and not elsewhere)
        other = {f"{status}{' (not the marketplace)' if elsewhere else ''}": n for (status, elsewhere), n in gets.items()
                 if status not in (200, 206) and not (400 <= status < 500 and not elsewhere)}
        checks.append((granted_rows == granted and refused_rows == refused and receipts == granted,
                       f"every GET recorded: clients got {granted} granted and {refused} refused GETs "
                       f"(other answers: {other or 'none'}); Download rows {granted_rows} granted, {refused_rows} refused; "
                       f"{receipts} receipts for the granted rows"))
        connection.close()
        return checks

    @property
    def get_statuses(self) -> Counter:
        """(status, answered by something other than the marketplace) of every file GET the clients made."""
        counts = Counter(self.client_gets)
        for endpoint, status, _ in self.download_rows:
            if endpoint.startswith("GET resolve"):
                counts[(status, endpoint.endswith("[not the marketplace]"))] += 1
        return counts


def _aware(unix: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, tz=UTC)


def report(soak: Soak, result: dict, checks: list[tuple[bool, str]], note: str) -> int:
    args = soak.args
    rows = result["rows"] + soak.recorder.rows[soak.mark[0]:soak.mark[1]]
    seconds = result["load_seconds"]
    by_endpoint: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    for endpoint, status, took in rows:
        by_endpoint[endpoint].append(took)
        statuses[endpoint][status] += 1
    web_workers = args.web_workers or min(2 * (os.cpu_count() or 1) + 1, 16)
    total = len(rows)
    print(f"{note}; {os.cpu_count()} cores; {seconds:.0f} s of load; {args.downloaders} downloaders "
          f"(HEAD + GET of {args.range_kib} KiB ranges of {args.file_mib} MiB files), {args.purchases_per_min:g} purchases/min, "
          f"{args.publishes_per_min:g} publishes/min, a Celery worker SIGKILLed every {args.kill_every:g} s ({len(soak.kills)} kills)")
    print(f"2 gunicorn instances x {web_workers} sync workers behind nginx (X-Accel-Redirect to an S3 location: moto_server); "
          f"2 Celery workers + beat on Redis; PostgreSQL (conn_max_age=600); anvil --block-time 2, CONFIRMATIONS={CONFIRMATIONS}\n")
    print(f"requests answered: {total:,} in {seconds:.0f} s = {total / seconds:.0f} requests/s "
          f"({total / seconds / (2 * web_workers):.1f} per gunicorn worker); machine CPU busy {result['machine_busy'] * 100:.0f}%\n")
    print("| endpoint | requests | requests/s | p50 (ms) | p99 (ms) | answers by status |")
    print("|---|---:|---:|---:|---:|---|")
    for endpoint in sorted(by_endpoint, key=lambda e: -len(by_endpoint[e])):
        took = by_endpoint[endpoint]
        answers = ", ".join(f"{s or 'no answer'}: {n:,}" for s, n in sorted(statuses[endpoint].items()))
        print(f"| {endpoint} | {len(took):,} | {len(took) / seconds:.1f} | {percentile(took, 0.5) * 1000:.0f} "
              f"| {percentile(took, 0.99) * 1000:.0f} | {answers} |")
    errors = Counter()
    for endpoint, counts in statuses.items():
        for status, n in counts.items():
            if status == 0 or status >= 500 or status == 429 or endpoint.endswith("[not the marketplace]"):
                errors[f"{status or 'no answer'}{' (nginx/S3)' if endpoint.endswith('[not the marketplace]') else ''}"] += n
    print(f"\nerrors by status: {dict(errors) or 'none'} (403 before a purchase is expected: it is the licence check)")
    grants = soak.first_grant
    during = soak.publishes[soak.setup_publishes:]
    if grants:
        print(f"purchase mined -> first granted GET: {len(grants)} purchases, p50 {statistics.median(grants):.2f} s, "
              f"longest {max(grants):.2f} s")
    if during:
        took = [p["seconds"] for p in during]
        print(f"publish (draft -> live): {len(during)} versions, p50 {statistics.median(took):.1f} s, longest {max(took):.1f} s")
    if soak.connections:
        print(f"database connections (every 2 s): mean {statistics.mean(soak.connections):.0f}, max {max(soak.connections)}; "
              f"max by state {dict(soak.connections_by_state)}")
    print(f"settled in {soak.settle_seconds:.0f} s after the load" + (f"; still waiting: {soak.settle_left}" if soak.settle_left else ""))
    if soak.errors:
        print(f"client-side failures ({len(soak.errors)}): " + " | ".join(soak.errors[:8]))
    print("\n| CPU during the load | seconds | cores |")
    print("|---|---:|---:|")
    for name, cpu in result["cpu"].items():
        print(f"| {name} | {cpu:.0f} | {cpu / seconds:.2f} |")
    print()
    for ok, text in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--downloaders", type=int, default=200, help="concurrent downloaders (default 200)")
    parser.add_argument("--purchases-per-min", type=float, default=50)
    parser.add_argument("--publishes-per-min", type=float, default=5)
    parser.add_argument("--kill-every", type=float, default=60, help="SIGKILL a Celery worker this often, s (default 60; 0: never)")
    parser.add_argument("--web-workers", type=int, default=0, help="gunicorn workers per instance (default: deploy/gunicorn.conf.py's)")
    parser.add_argument("--file-mib", type=int, default=4, help="size of each version's file (default 4 MiB)")
    parser.add_argument("--range-kib", type=int, default=256, help="each ranged GET's window (default 256 KiB)")
    parser.add_argument("--settle", type=float, default=420, help="at most this long for the system to finish after the load, s")
    parser.add_argument("--database", default="hallmark_soak_bench", help="throw-away database; its name must contain 'bench'")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server (without the db)")
    parser.add_argument("--redis-db", type=int, default=4, help="Redis database, flushed first (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs) at the end")
    args = parser.parse_args()
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print("nginx is not installed: run `make bench-deps`", file=sys.stderr)
        return 0
    if not postgres_reachable(args.pg_server):
        return 0
    import redis

    redis_url = f"{args.redis.rstrip('/')}/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    cleanup_on_sigterm()
    note = f"{commit_note()}; {load_note()}"
    with throwaway_postgres(args.database, args.pg_server) as url, Stack(prefix="hallmark-bench-soak-", database_url=url, keep=args.keep) as stack:
        soak = Soak(args, stack, url, redis_url)
        try:
            soak.start()
            result = soak.run()
            checks = soak.settle_and_check()
            return report(soak, result, checks, note)
        except BaseException:
            for name in sorted(p.stem for p in (stack.dir / "logs").glob("*.log")):
                tail = stack.log_tail(name, 15)
                if tail:
                    print(f"--- {name} log ---\n{tail}", file=sys.stderr)
            raise
        finally:
            if args.keep:
                print(f"kept {stack.dir}", file=sys.stderr)
            redis.Redis.from_url(redis_url).flushdb()


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
