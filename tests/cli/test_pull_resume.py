"""`hallmark pull`'s own downloader against the live marketplace, with a loopback proxy in front
of it that counts the file bytes it forwards and misbehaves on demand: it freezes at a byte (so
the `hallmark pull` process can be SIGKILLed at a known point, mid-segment), corrupts one byte of
one segment once, or cuts every connection after a few MB. The version has per-segment digests
(VERSION_SEGMENT_SIZE = 1 MiB), committed by its signed metadata; nothing is mocked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.cli.conftest import HALLMARK
from tests.conftest import publish, publish_version, purchase

pytestmark = pytest.mark.django_db(transaction=True)

SEG = 1024 * 1024
HEAD_LIMIT = 64 * 1024


class Proxy:
    """A threaded HTTP/1.1 proxy (one request at a time per connection, as `requests` sends them).
    Bodies of `/resolve/` answers are counted (`body_bytes`, `fetched`: path, file offset, length)
    and go through the faults; every other byte is relayed untouched."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.lock = threading.Lock()
        self.body_bytes = 0
        self.generation = 0
        self.sending = 0  # bytes being handed to a client socket under a freeze
        self.fetched: list[tuple[str, int, int]] = []
        self.freeze_at: int | None = None
        self.frozen = threading.Event()
        self.released = threading.Event()
        self.cut_every: int | None = None
        self.cuts = 0
        self.corrupt: set[tuple[str, int]] = set()
        self.corrupted: list[tuple[str, int]] = []
        self.sockets: set[socket.socket] = set()
        self._per_connection: dict[int, int] = {}
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.sending = 0
            self.body_bytes = 0
            self.fetched = []
            self.freeze_at = None
            self.frozen.clear()
            self.released.clear()

    def release(self) -> None:
        """Unfreeze: the frozen connections are closed."""
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.server.close()
        for sock in list(self.sockets):
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        self.sockets.update((client, upstream))
        client_in, upstream_in = client.makefile("rb"), upstream.makefile("rb")
        try:
            while self._exchange(client, client_in, upstream, upstream_in):
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                # counts are keyed by id(): a later socket object may get this one's id, and must
                # not start at this connection's count (it would be cut before its first byte)
                self._per_connection.pop(id(client), None)
            for sock in (client, upstream):
                self.sockets.discard(sock)
                sock.close()

    def _exchange(self, client, client_in, upstream, upstream_in) -> bool:
        head = _read_head(client_in)
        if not head:
            return False
        method, target = head.split(b" ", 2)[:2]
        headers = _headers(head)
        upstream.sendall(head)
        length = int(headers.get(b"content-length", b"0"))
        if length:
            upstream.sendall(client_in.read(length))
        answer = _read_head(upstream_in)
        if not answer:
            return False
        status = int(answer.split(b" ", 2)[1])
        answer_headers = _headers(answer)
        client.sendall(answer)
        if method == b"HEAD" or status in (204, 304) or status < 200:
            return True
        size = answer_headers.get(b"content-length")
        target_text = unquote(target.decode())
        if b"/resolve/" in target and size is not None:
            path = target_text.split("/resolve/", 1)[1].split("/", 1)[1]
            start = 0
            ranged = headers.get(b"range", b"").decode()
            if status == 206 and ranged.startswith("bytes="):
                start = int(ranged[6:].split("-")[0])
            return self._body(client, upstream_in, int(size), path, start)
        if size is None:
            while block := upstream_in.read1(HEAD_LIMIT):
                client.sendall(block)
            return False
        client.sendall(upstream_in.read(int(size)))
        return b"close" not in answer_headers.get(b"connection", b"").lower()

    def _body(self, client, upstream_in, size: int, path: str, start: int) -> bool:
        sent = 0
        with self.lock:
            self.fetched.append((path, start, size))
            generation = self.generation
        while sent < size:
            block = bytearray(upstream_in.read(min(64 * 1024, size - sent)))
            if not block:
                return False
            with self.lock:
                for where in sorted(self.corrupt):
                    name, offset = where
                    if name == path and start + sent <= offset < start + sent + len(block):
                        block[offset - start - sent] ^= 0xFF
                        self.corrupt.discard(where)
                        self.corrupted.append(where)
                take = len(block)
                if self.freeze_at is not None:
                    take = min(take, max(0, self.freeze_at - self.body_bytes - self.sending))
                    self.sending += take
                if self.cut_every is not None:
                    take = min(take, self.cut_every - self._on_connection(client))
            client.sendall(block[:take])
            with self.lock:
                if self.freeze_at is not None:
                    self.sending -= take
                if generation == self.generation:  # not a connection of a killed run, still draining
                    self.body_bytes += take
                self._count(client, take)
                frozen = self.freeze_at is not None
                if frozen and self.body_bytes >= self.freeze_at:
                    self.frozen.set()
            sent += take
            if take < len(block):
                if frozen:
                    self.released.wait()
                else:
                    self.cuts += 1
                return False  # frozen then released, or cut: the connection closes mid-body
        return True

    def _on_connection(self, client) -> int:
        return self._per_connection.get(id(client), 0)

    def _count(self, client, n: int) -> None:
        self._per_connection[id(client)] = self._per_connection.get(id(client), 0) + n


def _read_head(stream) -> bytes:
    lines = []
    total = 0
    while True:
        line = stream.readline(HEAD_LIMIT)
        if not line:
            return b""
        lines.append(line)
        total += len(line)
        if line in (b"\r\n", b"\n") or total > HEAD_LIMIT:
            return b"".join(lines)


def _headers(head: bytes) -> dict[bytes, bytes]:
    found = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            found[name.strip().lower()] = value.strip()
    return found


@pytest.fixture
def big(chain, vendor, make_party, marketplace_cli, live_server, settings, tmp_path):
    """acme/big: two multi-MiB files and a card, with 1 MiB segments; a buyer with a licence whose
    CLI talks to the marketplace through the proxy."""
    settings.VERSION_SEGMENT_SIZE = SEG
    files = {"a.data": os.urandom(6 * SEG + 12345), "b.data": os.urandom(3 * SEG + 7), "README.md": b"# big\n"}
    version = publish(vendor, "big", files)
    assert version.metadata.get("segments", {}).get("size") == SEG
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, version.model.chain_model_id, buyer.key)
    proxy = Proxy(live_server.url)
    marketplace_cli.env.update(HALLMARK_TOKEN=buyer.token, HALLMARK_ENDPOINT=proxy.url)
    yield Big(marketplace_cli, proxy, version, files, tmp_path / "models" / "big", chain)
    proxy.close()


class Big:
    def __init__(self, cli, proxy, version, files, folder, chain):
        self.cli, self.proxy, self.version, self.files, self.folder, self.chain = cli, proxy, version, files, folder, chain
        self.total = sum(len(data) for data in files.values())
        self.partial = folder.parent / (folder.name + ".hallmark-partial")

    def args(self, *extra: str) -> tuple[str, ...]:
        return ("pull", "acme/big", "--dir", str(self.folder), "--rpc", self.chain.rpc_url, *extra)

    def pull(self, *extra: str):
        return self.cli.run(*self.args(*extra))

    def spawn(self, *extra: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HALLMARK_", "HF_"))}
        env.update(HALLMARK_CONFIG_DIR=str(self.cli.home / "config"), HF_HOME=str(self.cli.home / "hf"), **self.cli.env)
        return subprocess.Popen([str(HALLMARK), *self.args(*extra)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def journal_bytes(self) -> int:
        """Bytes the journal records as good (what a new run keeps)."""
        journals = list(self.partial.glob("*/journal.json"))
        if not journals:
            return 0
        done = json.loads(journals[0].read_text())["done"]
        sizes = {name: len(self.files[name]) for name in self.files}
        return sum(min(SEG, sizes[name] - int(i) * SEG) for name, segments in done.items() for i in segments)

    def installed(self) -> bool:
        on_disk = {p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file() and ".hallmark" not in p.parts}
        return on_disk == set(self.files) and all((self.folder / n).read_bytes() == d for n, d in self.files.items())

    def no_stray_files(self) -> bool:
        return sorted(p.name for p in self.folder.parent.iterdir()) == [self.folder.name]


def _kill_at(big: Big, at: int, workers: int) -> int:
    """Start a pull, SIGKILL it once the proxy has forwarded `at` file bytes and the client has
    written and recorded everything but the segments in flight; the bytes forwarded."""
    big.proxy.reset()
    big.proxy.freeze_at = at
    before = big.journal_bytes()
    process = big.spawn("--workers", str(workers))
    try:
        assert big.proxy.frozen.wait(120), "the pull never reached the freeze point"
        # frozen: nothing more arrives; the client records what it holds (all but <= 1 segment per connection)
        deadline_checks = 0
        while big.journal_bytes() < before + at - workers * SEG and process.poll() is None and deadline_checks < 6000:
            threading.Event().wait(0.02)
            deadline_checks += 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        big.proxy.release()
        big.proxy.freeze_at = None
    return big.proxy.body_bytes


def test_a_pull_killed_mid_segment_resumes_with_only_the_missing_bytes(big):
    kept = 0
    # two kills, both mid-segment: 1 worker at ~30%, then 3 workers further on
    for at, workers in ((3 * SEG + 300_000, 1), (4 * SEG + 77_777, 3)):
        forwarded = _kill_at(big, at, workers)
        assert forwarded == at
        recorded = big.journal_bytes()
        lost = kept + forwarded - recorded
        assert 0 <= lost <= workers * SEG, (kept, forwarded, recorded)  # at most one segment per connection in flight
        kept = recorded
        assert not big.folder.exists()  # nothing installed while incomplete
    big.proxy.reset()
    pulled = big.pull("-v")
    assert pulled.code == 0, pulled.text
    assert "resuming:" in pulled.out
    # the last run fetched exactly what the journal did not hold: no byte twice
    assert big.proxy.body_bytes == big.total - kept
    assert big.installed() and big.no_stray_files()


def test_a_corrupted_segment_is_fetched_again_alone(big):
    big.proxy.corrupt = {("a.data", 2 * SEG + 5)}
    pulled = big.pull("--workers", "2", "-v")
    assert pulled.code == 0, pulled.text
    assert big.proxy.corrupted == [("a.data", 2 * SEG + 5)]
    assert "a.data: segment 2 is not the signed bytes; fetching it again" in pulled.out
    assert big.proxy.body_bytes == big.total + SEG  # everything once, and segment 2 of a.data twice
    assert ("a.data", 2 * SEG, SEG) in big.proxy.fetched
    assert big.installed() and big.no_stray_files()


def test_a_connection_cut_every_few_mb_still_completes(big):
    big.proxy.cut_every = 2 * SEG + 1000  # never on a segment boundary
    pulled = big.pull("--workers", "2")
    assert pulled.code == 0, pulled.text
    assert big.proxy.cuts >= 2
    assert big.proxy.body_bytes == big.total  # each cut resumes at the byte it reached
    assert big.installed() and big.no_stray_files()


def test_a_tampered_stored_file_is_never_installed_and_the_previous_version_stays(big, vendor):
    from django.core.files.storage import default_storage

    assert big.pull().code == 0
    v1 = {p.name: p.read_bytes() for p in big.folder.iterdir() if p.is_file()}
    files = dict(big.files, **{"b.data": os.urandom(2 * SEG + 3)})
    v2 = publish_version(vendor, big.version.model, files)
    stored = Path(default_storage.path(v2.artifacts.get(path="b.data").storage_name))
    data = bytearray(stored.read_bytes())
    data[SEG + 10] ^= 0x01  # the server's copy goes bad after the vendor signed it
    stored.write_bytes(bytes(data))

    pulled = big.pull("--revision", "v2")
    assert pulled.code == 3, pulled.text
    assert "b.data failed verification (tampered): segment 1" in pulled.err
    assert {p.name: p.read_bytes() for p in big.folder.iterdir() if p.is_file()} == v1
    assert json.loads((big.folder / ".hallmark" / "version.json").read_text())["version"] == 1
    assert big.no_stray_files()


def test_clean_removes_partial_data_and_another_commit_replaces_it(big):
    _kill_at(big, 2 * SEG + 5, 1)
    assert list(big.partial.glob("*/journal.json"))
    cleaned = big.cli.run("pull", "--clean", str(big.folder))
    assert cleaned.code == 0 and "removed" in cleaned.out
    assert not big.partial.exists() and not big.folder.exists()
    # a stale commit's leftovers go as soon as another commit is pulled into the same folder
    stale = big.partial / ("0" * 40)
    stale.mkdir(parents=True)
    (stale / "junk").write_bytes(b"x" * 10)
    assert big.pull().code == 0
    assert big.installed() and big.no_stray_files()


def test_pull_refuses_to_replace_a_folder_it_did_not_make(big):
    big.folder.mkdir(parents=True)
    (big.folder / "mine.txt").write_text("keep me")
    refused = big.pull()
    assert refused.code == 2 and "no `hallmark pull` put there" in refused.err
    assert (big.folder / "mine.txt").read_text() == "keep me"


def test_the_names_pull_keeps_to_itself_match_the_modules_it_avoids_importing():
    """`pull` loads eth-account (device, verify) only when it needs them, so it repeats a few names."""
    from hallmark import device
    from hallmark import verify as core
    from hallmark.commands import pull, verify

    assert pull.SAVED == verify.SAVED and pull.DEVICE_FILE == device.DEVICE_FILE
    assert pull.CHAIN_UNAVAILABLE == core.Outcome.CHAIN_UNAVAILABLE
