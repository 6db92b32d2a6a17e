"""Helpers for the benchmarks that need the marketplace: a throw-away stack in a temp directory.

`Stack` owns a temp directory with a SQLite database, media and deployment folders, an anvil
child on a free port with ModelRegistry deployed (`manage.py deploy_registry`) and the database
migrated. `stack.env` is the environment every child (manage.py, gunicorn) and an in-process
`django.setup()` must see. Children are stopped and the directory removed on `close()`, also
after an error (use it as a context manager).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rpc(url: str, method: str, params: list | None = None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.load(response)
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply["result"]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Wait until `url` answers over HTTP (any status), or fail if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f}s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (/proc/PID/stat), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss(pids: list[int]) -> bool:
    """Reset VmHWM of `pids` (Linux: `echo 5 > /proc/PID/clear_refs`); False if not allowed."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def postgres_reachable(server: str) -> bool:
    """Whether the PostgreSQL client tools are installed and `server` answers; says why not on
    stderr (a benchmark that needs it then exits 0: a missing tool is not a finding)."""
    if shutil.which("createdb") is None:
        print("createdb/dropdb are not installed (Debian: apt-get install postgresql-client)", file=sys.stderr)
        return False
    probe = subprocess.run(["psql", server + "/postgres", "-Atc", "SELECT 1"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"PostgreSQL does not answer at {server}: {probe.stderr.strip()}", file=sys.stderr)
        return False
    return True


@contextmanager
def throwaway_postgres(name: str, server: str = "postgres://postgres@127.0.0.1:5432", keep: bool = False):
    """Create database `name` on `server` (createdb), yield its URL, drop it at the end (dropdb
    --force; unless `keep`), also after an error. Refuses a name without "bench" in it: it is dropped first."""
    if "bench" not in name:
        raise ValueError(f"refusing to use database {name!r}: a throw-away database's name must contain 'bench'")
    parts = urlparse(server)
    conn = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    env = {**os.environ, **({"PGPASSWORD": parts.password} if parts.password else {})}
    subprocess.run(["dropdb", *conn, "--if-exists", "--force", name], check=True, env=env, capture_output=True)
    subprocess.run(["createdb", *conn, name], check=True, env=env, capture_output=True)
    try:
        yield f"{server.rstrip('/')}/{name}"
    finally:
        if not keep:
            subprocess.run(["dropdb", *conn, "--if-exists", "--force", name], env=env, capture_output=True)


def commit_note() -> str:
    """The commit measured, and whether the application's code differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "config", "marketplace", "royalties", "registry"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"
    return f"commit {head}" + (" (application code modified since)" if dirty else "")


def load_note() -> str:
    try:
        one, five, _ = Path("/proc/loadavg").read_text().split()[:3]
        return f"load average {one} (1 min), {five} (5 min) at start"
    except OSError:
        return "load average unknown"


class Stack:
    """A temp directory, a SQLite database, an anvil chain with the registry deployed."""

    def __init__(self, *, prefix: str, tmp_parent: str | None = None, database_url: str | None = None, keep: bool = False):
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_parent))
        self.keep = keep  # leave the directory (logs) in place on close()
        self.children: list[subprocess.Popen] = []
        self.anvil_port = free_port()
        self.rpc_url = f"http://127.0.0.1:{self.anvil_port}"
        for sub in ("media", "data", "deployments", "logs"):
            (self.dir / sub).mkdir()
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=database_url or f"sqlite:///{self.dir / 'db.sqlite3'}",
            MEDIA_ROOT=str(self.dir / "media"),
            HALLMARK_DATA_DIR=str(self.dir / "data"),
            DEPLOYMENTS_DIR=str(self.dir / "deployments"),
            CHAIN_RPC_URL=self.rpc_url,
            CHAIN_ID="31337",
            REGISTRY_ADDRESS="",
            REDIS_URL="",
            CELERY_TASK_ALWAYS_EAGER="1",
            DEBUG="0",
            SECURE_SSL_REDIRECT="0",  # plain HTTP on loopback (DEBUG=0 would redirect every request to https)
            SECRET_KEY="hallmark-bench-" + os.urandom(16).hex(),
            LOG_LEVEL="WARNING",
        )
        self.env.pop("RELAYER_PRIVATE_KEY", None)
        self.env.pop("RELAYER_KEYSTORE", None)

    # ---------------------------------------------------------------------------- children

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """Start a child logging to logs/<name>.log; `extra_env` is added to `self.env` for it alone."""
        log = open(self.dir / "logs" / f"{name}.log", "wb")
        env = {**self.env, **(extra_env or {})}
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        log.close()
        self.children.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.dir / "logs" / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start_chain(self, *anvil_args: str) -> None:
        """anvil on a free port, the database migrated, ModelRegistry deployed."""
        proc = self.spawn("anvil", [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.anvil_port), "--silent", *anvil_args])
        for _ in range(300):
            try:
                rpc(self.rpc_url, "eth_chainId")
                break
            except Exception:
                if proc.poll() is not None:
                    raise RuntimeError(f"anvil exited with {proc.returncode}: {self.log_tail('anvil')}") from None
                time.sleep(0.05)
        else:
            raise RuntimeError("anvil did not answer")
        self.manage("migrate", "--noinput", "-v", "0")
        self.deployment = json.loads(self.manage("deploy_registry", "--rpc-url", self.rpc_url, "--json").strip().splitlines()[-1])

    # ---------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        for proc in reversed(self.children):
            stop(proc)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cleanup_on_sigterm() -> None:
    """Turn SIGTERM (and SIGHUP) into SystemExit so `finally` blocks stop children and remove temp dirs."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
