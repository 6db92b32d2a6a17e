"""`hallmark pull`'s downloader: ranged GETs over kept-alive connections, several at once,
every segment checked as it arrives, resumable across restarts, installed atomically.

Each file is cut into segments (the version's signed segment document, `hallmark.segments`, when
it has one; else segments of SEGMENT_SIZE that are checked only as a whole file at the end).
Workers (threads, one `requests.Session` each) take runs of consecutive missing segments, ask
for them with one Range GET, write the bytes at their offsets (`os.pwrite`) into a sized (sparse)
partial file and hash each segment as its bytes arrive: a segment whose digest is not the listed
one, or whose connection is cut, is fetched again alone (bounded retries with backoff).

The whole file's SHA-256 advances over the contiguous prefix of finished segments: the worker
whose segment starts at that prefix feeds the bytes it receives into the file's hasher too
(with a snapshot to roll back to if the segment turns out bad); a segment finished out of order
is read back from the partial file when the prefix reaches it, moments after it was written, so
from the page cache rather than the disk. With one worker, every byte is hashed from the network.

Partial data lives beside the target folder, in `<DIR>.hallmark-partial/<commit>/`: the files at
their relative paths under `files/`, and `journal.json` (the segments known good, written
atomically: temp file, fsync, rename). A new run re-hashes the segments the journal lists from
disk (no network) and fetches only the rest, so a kill loses at most the segments in flight.
The journal is only a hint: every segment it lists is checked again before it is trusted, so
a power cut that lost written data costs a download again, never a wrong byte. Data is not
fsynced per segment unless HALLMARK_PULL_FSYNC=1 (the disk, not the network, would then set
the pace: see docs/cli.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from . import __version__
from .manifest import validate_relative_path
from .segments import SEGMENT_SIZE, segment_count, segment_range

PARTIAL_SUFFIX = ".hallmark-partial"
JOURNAL = "journal.json"
STAGED = "files"
RETIRED = "retired"
CHUNK = 1024 * 1024  # one read from the socket, one pwrite: the memory a worker holds
MAX_RUN_SEGMENTS = 64  # one Range GET asks for at most this many segments (1 GiB of 16 MiB ones)
MAX_ATTEMPTS = 5  # per segment, before the pull stops with an error
MAX_REDIRECTS = 3
MAX_FILES = 100_000
MAX_JOURNAL_BYTES = 64 * 1024 * 1024
MAX_RETRY_AFTER = 60.0
ERROR_BODY = 4096  # of an error answer, at most this much is read
TAMPERED = 3  # verify.Outcome.TAMPERED: what the exit code says when bytes are not the signed ones
# 4 connections, but no more threads than cores: the hashing is CPU-bound, and on 2 cores 4
# threads spend their time on the GIL and the file's write lock (bench/pull.py)
_DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1, 32))


class FetchError(Exception):
    """Stops the pull: the message says what happened and what to do; `exit_code` is the CLI's."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class _Retry(Exception):
    """A segment to fetch again (a cut connection, a bad digest, a server that is busy)."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait
MAX_RECEIPTS = 100_000  # receipt headers kept from one pull (as many as the recorder takes)


@dataclass(frozen=True)
class Wanted:
    """One file of the version as its signed metadata lists it."""

    path: str
    size: int
    sha256: str


def wanted_files(metadata: dict[str, Any] | None) -> list[Wanted]:
    """The files of a version's metadata, bounded and checked (paths that stay inside the folder,
    sizes that are whole numbers, digests that are SHA-256 hex) before anything is allocated."""
    listed = (metadata or {}).get("files")
    if not isinstance(listed, list) or not listed or len(listed) > MAX_FILES:
        raise FetchError("the version's metadata lists no files (or too many): nothing to download")
    files: list[Wanted] = []
    for item in listed:
        if not isinstance(item, dict):
            raise FetchError("the version's metadata holds a malformed file entry")
        path, size, digest = item.get("path"), item.get("size"), item.get("sha256")
        if not isinstance(path, str) or isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise FetchError("the version's metadata holds a malformed file entry")
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= set("0123456789abcdef"):
            raise FetchError(f"the version's metadata holds a malformed digest for {path[:200]}")
        files.append(Wanted(validate_relative_path(path), size, digest))
    if len({f.path for f in files}) != len(files):
        raise FetchError("the version's metadata lists a file twice")
    return files


def partial_root(folder: Path) -> Path:
    """Where the partial data of pulls into `folder` lives: a sibling, so renames stay on one disk."""
    folder = folder.resolve()
    return folder.parent / (folder.name + PARTIAL_SUFFIX)


def clean(folder: Path) -> bool:
    """Remove the partial data of pulls into `folder`; whether there was any."""
    root = partial_root(folder)
    if not root.exists():
        return False
    shutil.rmtree(root)
    return True


def resolve_url(endpoint: str, repo: str, commit: str, path: str) -> str:
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{commit}/{quote(path, safe='/')}"


# --- progress --------------------------------------------------------------------------------


class Progress:
    """What the pull tells the user: a byte count (a tqdm bar on a TTY) and per-file lines."""

    def start(self, total: int, already: int) -> None:
        """`total` bytes in the version, `already` of them on disk from an earlier run."""

    def advance(self, count: int) -> None:
        """`count` more bytes arrived (negative: bytes of a segment being fetched again)."""

    def file_done(self, path: str, size: int) -> None:
        """One file arrived and matches its signed SHA-256."""

    def note(self, text: str) -> None:
        """A retry, a resume: said only in verbose mode."""

    def close(self) -> None:
        """The pull is over (successfully or not)."""


class BarProgress(Progress):
    """One tqdm bar for the version (bytes, rate, time left) on stderr; per-file lines with verbose."""

    def __init__(self, *, bar: bool, verbose: bool, say: Callable[[str], None]) -> None:
        self.bar_wanted = bar
        self.verbose = verbose
        self.say = say
        self._bar: Any = None
        self._lock = threading.Lock()

    def start(self, total: int, already: int) -> None:
        if already and self.verbose:
            self.say(f"resuming: {already} of {total} bytes already here and checked")
        if self.bar_wanted:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=already, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True, leave=False)

    def advance(self, count: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(count)

    def file_done(self, path: str, size: int) -> None:
        if self.verbose:
            self._write(f"{path}: {size} bytes, SHA-256 matches the signed metadata")

    def note(self, text: str) -> None:
        if self.verbose:
            self._write(text)

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)
        else:
            self.say(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# --- the journal -----------------------------------------------------------------------------


class Journal:
    """`journal.json`: per file its size, signed digest and the segments known good (with their
    digests when no signed document lists them). Rewritten atomically after every segment."""

    def __init__(self, path: Path, header: dict[str, Any], done: dict[str, dict[int, str]], *, durable: bool = False) -> None:
        self.path = path
        self.header = header
        self.done = done
        self.durable = durable
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, header: dict[str, Any]) -> Journal | None:
        """The journal at `path` when it describes exactly this download (`header`); None when there
        is none, or it is unreadable or about something else (then its data is not reused)."""
        try:
            if path.stat().st_size > MAX_JOURNAL_BYTES:
                return None
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("header") != header or not isinstance(data.get("done"), dict):
            return None
        done: dict[str, dict[int, str]] = {}
        for name, segments in data["done"].items():
            if name not in header["files"] or not isinstance(segments, dict):
                return None
            try:
                done[name] = {int(index): str(digest) for index, digest in segments.items()}
            except (TypeError, ValueError):
                return None
        return cls(path, header, done)

    def record(self, name: str, index: int, digest: str) -> None:
        with self._lock:
            self.done.setdefault(name, {})[index] = digest
            self._write()

    def forget(self, name: str) -> None:
        with self._lock:
            self.done.pop(name, None)
            self._write()

    def _write(self) -> None:
        body = {"header": self.header, "done": {name: {str(i): d for i, d in sorted(s.items())} for name, s in self.done.items()}}
        temp = self.path.with_name(self.path.name + ".tmp")
        with open(temp, "w") as handle:
            json.dump(body, handle, separators=(",", ":"))
            handle.flush()
            if self.durable:
                # on ext4 (data=ordered) this commits the file system journal, which first writes
                # out the partial files' dirty data: the disk then sets the pace of the download
                os.fsync(handle.fileno())
        os.replace(temp, self.path)

    def save(self) -> None:
        with self._lock:
            self._write()


# --- one file being assembled ----------------------------------------------------------------


@dataclass
class _File:
    spec: Wanted
    local: Path
    segment_size: int
    expected: list[str] | None  # the signed segment digests, None without a segment document
    fd: int = -1
    done: dict[int, str] = field(default_factory=dict)
    prefix: int = 0  # bytes of the file fed into `whole`, in order
    busy: bool = False  # a worker (live feeder or catch-up) owns `whole`
    reported: bool = False

    def __post_init__(self) -> None:
        self.count = segment_count(self.spec.size, self.segment_size)
        self.whole = hashlib.sha256()
        self.lock = threading.Lock()

    def range_of(self, index: int) -> tuple[int, int]:
        return segment_range(index, self.spec.size, self.segment_size)

    def open(self) -> None:
        self.local.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.local, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size != self.spec.size:
            # sized, sparse: posix_fallocate would reserve the blocks, but writing into reserved
            # (unwritten) extents costs ext4 about 5x the system time of a sparse file's; the free
            # space is checked before the download starts instead (Downloader._check_space)
            os.ftruncate(self.fd, self.spec.size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def try_live(self, start: int) -> hashlib._Hash | None:
        """Own the whole-file hasher to feed it from the network, when `start` is the prefix:
        a snapshot to roll back to if the segment fails; None when someone else is at it."""
        with self.lock:
            if self.busy or self.prefix != start:
                return None
            self.busy = True
            return self.whole.copy()

    def end_live(self, index: int, digest: str | None, snapshot: hashlib._Hash) -> None:
        with self.lock:
            if digest is None:
                self.whole = snapshot
            else:
                self.done[index] = digest
                self.prefix = self.range_of(index)[1]
            self.busy = False

    def mark_done(self, index: int, digest: str) -> None:
        with self.lock:
            self.done[index] = digest

    def catch_up(self) -> None:
        """Hash the finished segments at the prefix, read back from the partial file (just
        written, so from the page cache). Whoever owns the hasher loops until no finished segment
        waits, so no segment is left behind."""
        while True:
            with self.lock:
                if self.busy or self.prefix >= self.spec.size:
                    return
                index = self.prefix // self.segment_size
                if index not in self.done:
                    return
                self.busy = True
                start, end = self.prefix, self.range_of(index)[1]
            try:
                for block in _read(self.fd, start, end):
                    self.whole.update(block)
            finally:
                with self.lock:
                    self.prefix = end
                    self.busy = False

    @property
    def complete(self) -> bool:
        return len(self.done) == self.count and self.prefix >= self.spec.size

    def bytes_done(self) -> int:
        return sum(self.range_of(i)[1] - self.range_of(i)[0] for i in self.done)


def _read(fd: int, start: int, end: int) -> Iterator[bytes]:
    offset = start
    while offset < end:
        block = os.pread(fd, min(CHUNK, end - offset), offset)
        if not block:
            raise FetchError("a partial file is shorter than expected: run `hallmark pull --clean DIR` and pull again")
        offset += len(block)
        yield block


@dataclass
class _Run:
    """Consecutive missing segments [first, last] of one file: one Range GET."""

    file: _File
    first: int
    last: int
    resume: tuple[int, Any] | None = None  # (offset, segment hasher) inside `first` after a cut


# --- the downloader --------------------------------------------------------------------------


class Downloader:
    """Fetch `files` of `commit` into `<folder>.hallmark-partial/<commit>/files/`, checked
    segment by segment and as whole files; `run()` returns that staged folder."""

    def __init__(
        self,
        *,
        endpoint: str,
        token: str,
        repo: str,
        commit: str,
        files: list[Wanted],
        folder: Path,
        segments: dict[str, list[str]] | None = None,
        segment_size: int = SEGMENT_SIZE,
        workers: int = _DEFAULT_WORKERS,
        progress: Progress | None = None,
        session_factory: Callable[[], requests.Session] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.repo = repo
        self.commit = commit
        self.segment_size = segment_size
        self.signed = segments is not None
        self.workers = max(1, min(int(workers), 32))
        self.progress = progress or Progress()
        self.session_factory = session_factory or _session
        self.fsync = os.environ.get("HALLMARK_PULL_FSYNC") == "1"
        self.root = partial_root(folder)
        self.work = self.root / commit
        self.staged = self.work / STAGED
        self.files = [_File(f, self.staged / f.path, segment_size, segments.get(f.path) if segments else None) for f in files]
        self._queue: queue.Queue[_Run | None] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        # X-Hallmark-Receipt of every answer (a receipt per granted GET, ranged ones included):
        # what the device's flight recorder keeps (hallmark.recorder.record_pull); bounded
        self.receipts: list[str] = []
        self._receipts_lock = threading.Lock()
        self._failures: dict[tuple[str, int], int] = {}
        self.journal: Journal | None = None

    # setup

    def _header(self) -> dict[str, Any]:
        return {
            "version": 1,
            "commit": self.commit,
            "segment_size": self.segment_size,
            "signed_segments": self.signed,
            "files": {f.spec.path: {"size": f.spec.size, "sha256": f.spec.sha256} for f in self.files},
        }

    def _prepare(self) -> None:
        """Drop partial data of other commits, open (or start) this commit's journal."""
        if self.root.exists():
            for other in self.root.iterdir():
                if other.name == self.commit:
                    continue
                if other.is_dir() and not other.is_symlink():
                    shutil.rmtree(other, ignore_errors=True)
                else:
                    other.unlink(missing_ok=True)
        header = self._header()
        journal = Journal.open(self.work / JOURNAL, header)
        if journal is None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.staged.mkdir(parents=True)
            journal = Journal(self.work / JOURNAL, header, {})
            journal.save()
        journal.durable = self.fsync
        self.journal = journal
        for item in self.files:
            item.open()

    def _recheck(self, item: _File) -> None:
        """Re-hash, from disk, the segments an earlier run recorded as good; the ones that still
        are count as done (and feed the whole-file hash, in the same read), the others are fetched."""
        assert self.journal is not None
        recorded = self.journal.done.get(item.spec.path, {})
        kept: dict[int, str] = {}
        for index in sorted(recorded):
            if not 0 <= index < item.count:
                continue
            start, end = item.range_of(index)
            contiguous = item.prefix == start
            snapshot = item.whole.copy() if contiguous else None
            digest = hashlib.sha256()
            for block in _read(item.fd, start, end):
                digest.update(block)
                if contiguous:
                    item.whole.update(block)
            hexdigest = digest.hexdigest()
            wanted = item.expected[index] if item.expected is not None else recorded[index]
            if hexdigest == wanted:
                kept[index] = hexdigest
                item.done[index] = hexdigest
                if contiguous:
                    item.prefix = end
            elif snapshot is not None:
                item.whole = snapshot
        item.catch_up()
        if kept != recorded:
            self.journal.done[item.spec.path] = kept

    def _check_space(self) -> None:
        """Fail now, not at 90%, when the disk cannot hold what is still missing."""
        missing = sum(f.spec.size - f.bytes_done() for f in self.files)
        free = shutil.disk_usage(self.work).free
        if missing > free:
            raise FetchError(f"{missing} bytes still to download but only {free} free beside the target folder")

    def _plan(self) -> list[_Run]:
        """Runs of missing segments, cut so every worker gets several (a slow connection then
        holds back only a small share)."""
        missing = [(item, i) for item in self.files for i in range(item.count) if i not in item.done]
        per_run = max(1, min(16, -(-len(missing) // (self.workers * 4))))
        if len({item.spec.path for item, _ in missing}) >= 2 * self.workers:
            # files enough for every worker to take whole ones: each is then hashed as it arrives,
            # in order, and no segment is read back from disk for the whole-file hash
            per_run = MAX_RUN_SEGMENTS
        runs: list[_Run] = []
        for item, index in missing:
            last = runs[-1] if runs else None
            if last is not None and last.file is item and last.last == index - 1 and last.last - last.first + 1 < per_run:
                last.last = index
            else:
                runs.append(_Run(item, index, index))
        return runs

    # the run

    def run(self) -> Path:
        self._prepare()
        assert self.journal is not None
        stuck = False
        try:
            for item in self.files:
                self._recheck(item)
            self.journal.save()
            self._check_space()
            total = sum(f.spec.size for f in self.files)
            self.progress.start(total, sum(f.bytes_done() for f in self.files))
            runs = self._plan()
            self._pending = len(runs)
            for one in runs:
                self._queue.put(one)
            threads = [threading.Thread(target=self._worker, name=f"hallmark-fetch-{n}", daemon=True) for n in range(min(self.workers, max(1, len(runs))))]
            for thread in threads:
                thread.start()
            try:
                with self._cond:
                    while self._pending and self._error is None:
                        self._cond.wait(0.5)
            finally:
                self._stop.set()
                for _ in threads:
                    self._queue.put(None)
                for thread in threads:
                    thread.join(None if self._error is None and not self._pending else 10)
                stuck = any(thread.is_alive() for thread in threads)  # in a read that has not timed out yet
            if self._error is not None:
                raise self._error
            for item in self.files:
                item.catch_up()
                self._finish(item)
        finally:
            if not stuck:  # a stuck worker keeps its descriptor: the process is about to exit
                for item in self.files:
                    item.close()
            self.progress.close()
        return self.staged

    def _finish(self, item: _File) -> None:
        """The whole file against its signed SHA-256."""
        assert self.journal is not None
        if not item.complete:
            raise FetchError(f"{item.spec.path} is incomplete: run the same command again to resume")
        if item.whole.hexdigest() != item.spec.sha256:
            self.journal.forget(item.spec.path)  # its bytes are not reused by the next run
            raise FetchError(
                f"{item.spec.path} failed verification (tampered): its SHA-256 is not the one the version's signed metadata "
                "lists, the server sent other bytes than the vendor signed; nothing was installed",
                TAMPERED,
            )
        if not item.reported:
            item.reported = True
            self.progress.file_done(item.spec.path, item.spec.size)

    def _worker(self) -> None:
        session = self.session_factory()
        try:
            while True:
                job = self._queue.get()
                if job is None or self._stop.is_set():
                    return
                try:
                    self._fetch_run(session, job)
                except BaseException as exc:  # noqa: BLE001 (handed to the main thread, which raises it)
                    with self._cond:
                        if self._error is None:
                            self._error = exc
                        self._cond.notify_all()
                    return
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()
        finally:
            session.close()

    def _fetch_run(self, session: requests.Session, job: _Run) -> None:
        """Fetch the run; a cut connection resumes from the byte it reached (a failure that
        brought nothing new counts towards the segment's bounded attempts, with backoff)."""
        item = job.file
        while job.first <= job.last and not self._stop.is_set():
            reached = job.resume[0] if job.resume else item.range_of(job.first)[0]
            try:
                self._stream(session, job)
            except _Retry as retry:
                key = (item.spec.path, job.first)
                progressed = (job.resume[0] if job.resume else item.range_of(job.first)[0]) > reached
                with self._cond:
                    attempts = self._failures[key] = 1 if progressed else self._failures.get(key, 0) + 1
                if attempts >= MAX_ATTEMPTS:
                    raise FetchError(
                        f"{item.spec.path}: segment {job.first} failed {attempts} times ({retry}); run the same command again to resume"
                    ) from None
                self.progress.note(f"{item.spec.path}: segment {job.first}: {retry}; continuing")
                wait = retry.wait if retry.wait is not None else (0.0 if progressed else min(0.25 * 2 ** (attempts - 1), 5.0))
                if wait and self._stop.wait(wait):
                    return

    def _stream(self, session: requests.Session, job: _Run) -> None:
        """One Range GET from where the run stands to its end. Raises _Retry for what another
        attempt may fix, with `job` left where the bytes stopped."""
        item = job.file
        start = job.resume[0] if job.resume else item.range_of(job.first)[0]
        response = self._get(session, item.spec, start, item.range_of(job.last)[1])
        receipt = response.headers.get("X-Hallmark-Receipt")
        if receipt:
            with self._receipts_lock:
                if len(self.receipts) < MAX_RECEIPTS:
                    self.receipts.append(receipt[:4096])
        try:
            while job.first <= job.last:
                if self._stop.is_set():
                    return
                if not self._segment(job, response.raw):
                    self._refetch(item, job.first)
                job.first += 1
                job.resume = None
        finally:
            response.close()

    def _refetch(self, item: _File, index: int) -> None:
        """A segment whose digest is not the signed one: fetched again alone (the rest of its run
        keeps streaming), a bounded number of times."""
        key = (item.spec.path, index)
        with self._cond:
            attempts = self._failures[key] = self._failures.get(key, 0) + 1
            if attempts >= MAX_ATTEMPTS:
                raise FetchError(
                    f"{item.spec.path} failed verification (tampered): segment {index} is not the bytes the vendor signed, "
                    f"{attempts} times over; nothing was installed", TAMPERED,
                )
            self._pending += 1
        self.progress.note(f"{item.spec.path}: segment {index} is not the signed bytes; fetching it again")
        self._queue.put(_Run(item, index, index))

    def _segment(self, job: _Run, raw: Any) -> bool:
        """Receive segment `job.first` into its place (from `job.resume` when an earlier attempt
        was cut); False when its digest is not the signed one."""
        item, index = job.file, job.first
        start, end = item.range_of(index)
        if job.resume is not None:
            offset, digest = job.resume
            snapshot = None  # the bytes before `offset` were not fed live: the catch-up reads them back
        else:
            offset, digest = start, hashlib.sha256()
            snapshot = item.try_live(start)
        while offset < end:
            if self._stop.is_set():  # another worker failed, or Ctrl-C: the segment stays missing
                if snapshot is not None:
                    item.end_live(index, None, snapshot)
                raise _Retry("stopped")
            try:
                block = raw.read(min(CHUNK, end - offset), decode_content=False)
            except Exception as exc:  # urllib3's ProtocolError, ReadTimeoutError, a reset socket
                block, cut = b"", f"connection lost ({exc.__class__.__name__})"
            else:
                cut = "connection closed early"
            if not block:
                if snapshot is not None:
                    item.end_live(index, None, snapshot)
                job.resume = (offset, digest)
                raise _Retry(cut)
            view = memoryview(block)
            digest.update(view)
            if snapshot is not None:
                item.whole.update(view)
            written = 0
            while written < len(view):
                written += os.pwrite(item.fd, view[written:], offset + written)
            offset += len(block)
            self.progress.advance(len(block))
        hexdigest = digest.hexdigest()
        if item.expected is not None and hexdigest != item.expected[index]:
            self.progress.advance(-(end - start))
            if snapshot is not None:
                item.end_live(index, None, snapshot)
            return False
        if self.fsync:
            os.fdatasync(item.fd)
        if snapshot is not None:
            item.end_live(index, hexdigest, snapshot)
        else:
            item.mark_done(index, hexdigest)
        assert self.journal is not None
        self.journal.record(item.spec.path, index, hexdigest)
        item.catch_up()
        return True

    def _get(self, session: requests.Session, spec: Wanted, start: int, end: int) -> requests.Response:
        """GET bytes [start, end) of the file, following a redirect to storage (without our token
        when it goes to another host); a 206 with exactly that range, else an error."""
        url = resolve_url(self.endpoint, self.repo, self.commit, spec.path)
        origin = urlsplit(url).netloc
        headers = {"Range": f"bytes={start}-{end - 1}", "Authorization": f"Bearer {self.token}"}
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = session.get(url, headers=headers, stream=True, allow_redirects=False, timeout=(15, 60))
            except requests.RequestException as exc:
                raise _Retry(f"connection failed ({exc.__class__.__name__})") from None
            if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                location = requests.compat.urljoin(url, response.headers["Location"])
                response.close()
                if urlsplit(location).scheme not in ("http", "https"):
                    raise FetchError("the server redirected the download to an unsupported address")
                url = location
                if urlsplit(location).netloc != origin:
                    headers.pop("Authorization", None)  # presigned storage URLs carry their own grant
                continue
            return self._check_answer(response, spec, start, end)
        raise FetchError(f"{spec.path}: too many redirects")

    @staticmethod
    def _check_answer(response: requests.Response, spec: Wanted, start: int, end: int) -> requests.Response:
        status = response.status_code
        if status == 206:
            expected = f"bytes {start}-{end - 1}/{spec.size}"
            if response.headers.get("Content-Range", "").strip() != expected:
                response.close()
                raise FetchError(f"{spec.path}: the server answered another range than asked ({expected[:80]})")
            return response
        if status == 200 and start == 0 and end == spec.size:
            return response
        message = _error_text(response)
        response.close()
        if status == 200:
            raise FetchError(f"{spec.path}: the server ignores Range requests; this downloader needs them")
        if status == 429 or status >= 500:
            retry_after = response.headers.get("Retry-After", "")
            wait = min(float(retry_after), MAX_RETRY_AFTER) if retry_after.isdigit() else None
            raise _Retry(f"the server answered {status}: {message}", wait)
        raise FetchError(f"the download failed: {message}")


def _error_text(response: requests.Response) -> str:
    """The marketplace's `{"code", "message"}` (or X-Error-* headers), bounded in length."""
    try:
        body = response.raw.read(ERROR_BODY, decode_content=True)
        data = json.loads(body)
        if isinstance(data, dict) and "code" in data:
            return f"{str(data.get('message') or data['code'])[:300]} [{str(data['code'])[:64]}]"
    except Exception:  # noqa: BLE001 (an unreadable error body: the headers or the status say enough)
        pass
    code = response.headers.get("X-Error-Code", "")[:64]
    message = response.headers.get("X-Error-Message", "")[:300] or f"HTTP {response.status_code}"
    return message + (f" [{code}]" if code else "")


def _session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = f"hallmark-cli/{__version__}"
    session.headers["Accept-Encoding"] = "identity"
    return session


# --- install ---------------------------------------------------------------------------------


def install(staged: Path, folder: Path) -> None:
    """Swap the verified `staged` folder in as `folder`: the previous folder is renamed aside,
    the staged one renamed in, then the old one removed; the partial data goes with it. Until
    the second rename, `folder` holds the previous version untouched."""
    folder = folder.resolve()
    root = partial_root(folder)
    retired = staged.parent / RETIRED
    shutil.rmtree(retired, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        os.rename(folder, retired)
        try:
            os.rename(staged, folder)
        except OSError:
            os.rename(retired, folder)
            raise
    else:
        os.rename(staged, folder)
    shutil.rmtree(root, ignore_errors=True)


def check_target(folder: Path, state_file: str) -> None:
    """Refuse to replace a folder that is not an earlier pull: the swap would remove its files."""
    folder = folder.resolve()
    if folder == Path.cwd().resolve() or folder == Path(folder.anchor):
        raise FetchError(f"{folder} is the current folder or the root: pull into a folder of its own (--dir)", 2)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / state_file).is_file())):
        raise FetchError(
            f"{folder} already holds files that no `hallmark pull` put there; a pull replaces the whole folder: "
            "choose another --dir or empty it first", 2,
        )
