"""Hash and inspect a version's files in a child process with hard limits (memory, CPU, wall time).

A model file is untrusted input: a parser bug or a bound we missed must cost one rejected
version, never the worker that runs it. So the work happens in a fresh interpreter
(`python -m registry.sandbox`, no Django, no secrets in its environment) under `RLIMIT_AS` and
`RLIMIT_CPU`, killed when it outlives its wall-clock budget. The parent reads what the child
printed (one JSON event per line, flushed as it goes) and so knows which file it was on when it
died, and what the files hashed to before that.

A fresh interpreter rather than a fork: the Celery worker has threads (and in the tests it *is*
a thread of pytest), and a forked copy of a threaded Python process may deadlock.

Example (what `marketplace.services.version_hash_and_inspect` does):

    results = files_hash_and_inspect([("/tmp/x/model.gguf", "model.gguf")], limits=Limits.for_bytes(size))
    results[0].sha256, results[0].facts  # or InspectionAborted (code "malformed_file") if the child died
    results[0].segments  # the SHA-256 of each `segment_size` bytes (hallmark.segments), same read

The per-segment digests come from the same read as the file's SHA-256 (`SegmentHasher`): the
whole-file digest runs on a second thread beside them, so a large file costs two cores rather
than twice the time. The parent checks that each file has exactly as many segment digests as its
size implies (a file of 64 GiB in 16 MiB segments: 4096, about 270 KB of JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hallmark.segments import MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, SEGMENT_SIZE, SegmentHasher, segment_count

from .inspection import InspectionError

BASE_DIR = Path(__file__).resolve().parent.parent
HASH_RATE_FLOOR = 50 * 1024 * 1024  # bytes/s: the slowest hashing we budget for (SHA-256 runs at 0.5-2 GB/s)
EXIT_OUT_OF_MEMORY = 3
MiB = 1024 * 1024
HASH_BLOCK_SIZE = 8 * MiB  # as hallmark.manifest: large reads keep hashlib at OpenSSL speed
_HEX = frozenset("0123456789abcdef")

DEFAULT_MEMORY_LIMIT = 2 * 1024 * MiB
DEFAULT_CPU_SECONDS = 60
DEFAULT_WALL_SECONDS = 120


@dataclass(frozen=True)
class Limits:
    """What one child may use: address space in bytes, CPU seconds, wall-clock seconds.

    Args:
        memory_bytes: `RLIMIT_AS` of the child (virtual memory: the interpreter itself takes ~100 MiB).
        cpu_seconds: `RLIMIT_CPU` (SIGXCPU, then SIGKILL a second later).
        wall_seconds: the parent kills the child after this long, whatever it is doing.
    """

    memory_bytes: int = DEFAULT_MEMORY_LIMIT
    cpu_seconds: int = DEFAULT_CPU_SECONDS
    wall_seconds: float = DEFAULT_WALL_SECONDS

    @classmethod
    def for_bytes(cls, total_bytes: int, *, memory_bytes: int = DEFAULT_MEMORY_LIMIT, cpu_seconds: int = DEFAULT_CPU_SECONDS,
                  wall_seconds: float = DEFAULT_WALL_SECONDS) -> Limits:
        """Hashing a large file legitimately takes time: the CPU and wall budgets grow with the bytes."""
        extra = total_bytes / HASH_RATE_FLOOR
        return cls(memory_bytes=memory_bytes, cpu_seconds=int(cpu_seconds + extra) + 1, wall_seconds=wall_seconds + extra)


class InspectionAborted(InspectionError):
    """The child died (a limit hit, a crash, an exception) while on the file it names.

    `hashed` ({name: (sha256, size)}) holds what it had hashed before that, so the caller can
    still report a digest mismatch ahead of the death.
    """

    def __init__(self, path: str, message: str, hashed: dict[str, tuple[str, int]]):
        super().__init__(path, message, code="malformed_file")
        self.hashed = hashed


@dataclass(frozen=True)
class FileResult:
    """One file as the child saw it: digest, size and segment digests (hallmark.segments), and its
    facts or the InspectionError it gave."""

    name: str
    sha256: str
    size: int
    facts: dict[str, Any] | None = None
    error: InspectionError | None = None
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChildRun:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool


def _apply_limits(pid: int, memory_bytes: int, cpu_seconds: int) -> None:
    """Set the child's limits from the parent (prlimit(2)): no code runs between fork and exec,
    which is what makes `preexec_fn` unsafe in a threaded process. The child reads its request
    from stdin first, so the limits are in place before it touches a file."""
    for which, soft, hard in (
        (resource.RLIMIT_AS, memory_bytes, memory_bytes),
        (resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        current_hard = resource.prlimit(pid, which)[1]
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.prlimit(pid, which, (soft, hard))


def _child_environment() -> dict[str, str]:
    """Only what an interpreter needs: the parent's secrets (relayer key, database) stay behind."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(BASE_DIR),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # one arena and no thread pools: address space is what RLIMIT_AS counts
        "MALLOC_ARENA_MAX": "2",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def run_limited(argv: list[str], stdin: bytes, limits: Limits) -> ChildRun:
    """Run `argv` in a fresh process under `limits`; the child is killed at the wall-clock limit."""
    child = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_environment(),
        cwd=BASE_DIR,
        close_fds=True,
    )
    try:
        _apply_limits(child.pid, limits.memory_bytes, limits.cpu_seconds)
    except ProcessLookupError:
        pass  # it is gone already (died starting up): its exit status says why
    except BaseException:
        child.kill()  # never let it read a file without its limits
        child.communicate()
        raise
    try:
        stdout, stderr = child.communicate(input=stdin, timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        stdout, stderr = child.communicate()
        return ChildRun(None, stdout or b"", stderr or b"", True)
    return ChildRun(child.returncode, stdout, stderr, False)


def files_hash_and_inspect(files: list[tuple[str, str]], *, limits: Limits, segment_size: int = SEGMENT_SIZE) -> list[FileResult]:
    """SHA-256, size, segment digests (of `segment_size` bytes each) and inspection facts of each
    `(local path, name in the version)`, in order.

    A file the parsers refuse comes back with its `error`; a child that dies (a limit hit, a
    crash, an exception) raises InspectionAborted (code `malformed_file`) naming the file it was on.
    """
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment_size must be from {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE} bytes")
    request = json.dumps({"files": [{"path": str(path), "name": name} for path, name in files], "segment_size": segment_size}).encode()
    run = run_limited([sys.executable, "-m", "registry.sandbox"], request, limits)
    hashed: dict[str, tuple[str, int]] = {}
    segmented: dict[str, list[str]] = {}
    inspected: dict[str, dict[str, Any]] = {}
    current = ", ".join(name for _, name in files)  # hashing runs on all files at once
    finished = False
    for line in run.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            break  # a line cut short by the kill
        kind = event.get("event")
        if kind == "hashed":
            hashed.update({name: (sha, size) for name, sha, size in event["digests"]})
        elif kind == "segments":
            segmented[event["name"]] = event["digests"]
        elif kind == "inspecting":
            current = event["name"]
        elif kind == "inspected":
            inspected[event["name"]] = event
        elif kind == "done":
            finished = True
    if finished and run.returncode == 0:
        results = []
        for _, name in files:
            sha, size = hashed[name]
            event = inspected[name]
            error = event.get("error")
            results.append(FileResult(
                name, sha, size, facts=event.get("facts"),
                error=InspectionError(name, error["message"].removeprefix(f"{name}: "), code=error["code"]) if error else None,
                segments=_checked_segments(name, segmented.get(name), size, segment_size),
            ))
        return results
    raise InspectionAborted(
        current, _death_reason(run, limits) + "; check that the file is a valid model file, then upload it in a new version", hashed
    )


def _checked_segments(name: str, digests: object, size: int, segment_size: int) -> tuple[str, ...]:
    """The child's segment digests of `name`, once there are exactly as many as its size implies
    and each is 64 lowercase hex characters: what the parent stores is bounded by the file's size."""
    if (
        not isinstance(digests, list)
        or len(digests) != segment_count(size, segment_size)
        or not all(isinstance(d, str) and len(d) == 64 and set(d) <= _HEX for d in digests)
    ):
        raise InspectionError(name, "the hashing process returned malformed segment digests for it", code="inspection_failed")
    return tuple(digests)


def _death_reason(run: ChildRun, limits: Limits) -> str:
    if run.timed_out:
        return f"inspecting it ran longer than {limits.wall_seconds:.0f} s and was stopped"
    code = run.returncode
    tail = run.stderr[-4096:]
    if code == EXIT_OUT_OF_MEMORY or any(sign in tail for sign in (b"MemoryError", b"Cannot allocate memory", b"allocation")):
        return f"inspecting it used more than {limits.memory_bytes // MiB} MiB of memory and was stopped"
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"inspecting it used more than {limits.cpu_seconds} s of CPU and was stopped"
    if code is not None and code < 0:
        return f"inspecting it crashed (signal {signal.Signals(-code).name})"
    last = run.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    return f"inspecting it failed (exit status {code}: {last[0][:300]})"


# ------------------------------------------------------------------------------ the child


def _emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def hash_file_segments(path: str | os.PathLike[str], segment_size: int) -> tuple[str, int, list[str]]:
    """SHA-256, size and segment digests of a file in one read, in constant memory (one block).

    The whole-file digest runs on a helper thread while this one computes the segments' (hashlib
    releases the GIL on large buffers): two cores instead of twice the time for one large file."""
    from concurrent.futures import ThreadPoolExecutor

    whole = hashlib.sha256()
    segments = SegmentHasher(segment_size=segment_size, whole_file=False)
    buffer = bytearray(HASH_BLOCK_SIZE)
    with open(path, "rb", buffering=0) as stream, ThreadPoolExecutor(max_workers=1) as helper:
        while n := stream.readinto(buffer):
            view = memoryview(buffer)[:n]
            pending = helper.submit(whole.update, view)
            segments.update(view)
            pending.result()  # the buffer is read again only once both are done with it
    _, digests = segments.finish()
    return whole.hexdigest(), segments.size, digests


def hash_files_segments(paths: list[str], segment_size: int) -> list[tuple[str, int, list[str]]]:
    """`hash_file_segments` of several files at once, one thread each; results in the order given."""
    if len(paths) <= 1:
        return [hash_file_segments(p, segment_size) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda p: hash_file_segments(p, segment_size), paths))


def _child_main() -> int:
    from .inspection import inspect_file

    request = json.loads(sys.stdin.buffer.read())
    files = [(entry["path"], entry["name"]) for entry in request["files"]]
    segment_size = int(request.get("segment_size", SEGMENT_SIZE))
    try:
        # one read per file gives its SHA-256 and its segment digests; constant memory
        hashed = hash_files_segments([path for path, _ in files], segment_size)
        _emit(event="hashed", digests=[[name, sha, size] for (_, name), (sha, size, _) in zip(files, hashed, strict=True)])
        for (_, name), (_, _, digests) in zip(files, hashed, strict=True):
            _emit(event="segments", name=name, digests=digests)
        for path, name in files:
            _emit(event="inspecting", name=name)
            try:
                _emit(event="inspected", name=name, facts=inspect_file(path, name))
            except InspectionError as exc:
                _emit(event="inspected", name=name, error={"code": exc.code, "message": str(exc)})
        _emit(event="done")
    except MemoryError:
        os._exit(EXIT_OUT_OF_MEMORY)  # no unwinding: the interpreter has nothing left to do it with
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
