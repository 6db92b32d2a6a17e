"""The CLI's tus uploader (hallmark.upload) against the live marketplace: each file read once
while its chunks and its SHA-256 are computed, a chunk damaged on the way refused by its
checksum and sent again, a file that changes refused, several files at once."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage

from hallmark import upload as upload_module
from hallmark.api import ApiError
from hallmark.upload import FileChanged, FileToUpload, upload_file, upload_files
from marketplace import services
from marketplace.models import Artifact, Upload, Version

pytestmark = pytest.mark.django_db(transaction=True)
CHUNK = 1024 * 1024


@pytest.fixture
def draft(live_version):
    return services.version_create(model=live_version.model)


def creation_url(base: str, version) -> str:
    return f"{base}/api/v1/vendor/models/{version.model.slug}/versions/{version.pk}/uploads"


def stored_bytes(version, path: str) -> bytes:
    artifact = Artifact.objects.get(version=version, path=path)
    with default_storage.open(artifact.storage_name, "rb") as fh:
        return fh.read()


def random_file(folder: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = folder / name
    path.write_bytes(data)
    return path, data


class Proxy:
    """A TCP relay in front of the live server: counts the connections open at once, keeps what
    the server answered, and (`corrupt`) flips one byte inside the first PATCH body it relays."""

    def __init__(self, target: str, *, corrupt: bool = False):
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.corrupt = corrupt
        self.answers = bytearray()
        self.open = self.most_open = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.open += 1
                self.most_open = max(self.most_open, self.open)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        seen = bytearray()
        try:
            while data := source.recv(1 << 20):
                if upstream and self.corrupt:
                    start = len(seen)
                    seen += data
                    request = seen.find(b"PATCH ")
                    body = seen.find(b"\r\n\r\n", request) if request >= 0 else -1
                    target = body + 4 + 1000
                    if body >= 0 and start <= target < len(seen):
                        data = bytearray(data)
                        data[target - start] ^= 0xFF
                        self.corrupt = False
                elif not upstream:
                    with self.lock:
                        self.answers += data[:200]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            if upstream:
                with self.lock:
                    self.open -= 1
            for s in (source, sink):
                s.close()

    def close(self) -> None:
        self.listener.close()


class CountingReads:
    """Counts the bytes read from the files the uploader opens (the real files, read for real)."""

    def __init__(self, monkeypatch):
        self.read: dict[str, int] = {}
        real_open = open
        counts = self.read

        class Counted(io.FileIO):
            def readinto(self, buffer) -> int:  # type: ignore[override]
                n = super().readinto(buffer) or 0
                counts[str(self.name)] = counts.get(str(self.name), 0) + n
                return n

        def counting_open(path, mode="r", buffering=-1, *args, **kwargs):
            if mode == "rb" and buffering == 0:
                return Counted(path, "rb")
            return real_open(path, mode, buffering, *args, **kwargs)

        monkeypatch.setattr(upload_module, "open", counting_open, raising=False)


def test_each_file_is_read_once_while_its_chunks_and_digest_are_computed(live_server, vendor, draft, tmp_path, monkeypatch):
    reads = CountingReads(monkeypatch)
    path, data = random_file(tmp_path, "weights.gguf", 3 * CHUNK + 123)
    remembered: list[str | None] = []
    result = upload_file(creation_url(live_server.url, draft), vendor.token, path, "sub/weights.gguf",
                         stored_url=None, remember=remembered.append, chunk_size=CHUNK, progress=False)

    assert reads.read == {str(path): len(data)}  # every byte once, no separate hashing pass
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size == len(data)
    assert list(result.chunk_digests) == [hashlib.sha256(data[i:i + CHUNK]).hexdigest() for i in range(0, len(data), CHUNK)]
    assert stored_bytes(draft, "sub/weights.gguf") == data
    assert len(remembered) == 1 and remembered[0].startswith(f"{live_server.url}/api/v1/uploads/")


def test_a_resumed_upload_sends_only_what_the_server_lacks_and_hashes_the_rest(live_server, vendor, draft, tmp_path, monkeypatch):
    path, data = random_file(tmp_path, "weights.gguf", 4 * CHUNK + 5)
    remembered: list[str | None] = []

    def stop_after_two(end: int) -> None:
        if end == 2 * CHUNK:
            raise KeyboardInterrupt  # the vendor stops the run
    with pytest.raises(KeyboardInterrupt):
        upload_file(creation_url(live_server.url, draft), vendor.token, path, "weights.gguf", stored_url=None,
                    remember=remembered.append, chunk_size=CHUNK, on_chunk=stop_after_two, progress=False)
    assert Upload.objects.get(version=draft).offset == 2 * CHUNK

    reads = CountingReads(monkeypatch)
    sent: list[int] = []
    result = upload_file(creation_url(live_server.url, draft), vendor.token, path, "weights.gguf", stored_url=remembered[0],
                         remember=remembered.append, chunk_size=CHUNK, on_chunk=sent.append, progress=False)
    assert sent == [3 * CHUNK, 4 * CHUNK, 4 * CHUNK + 5]  # the first two chunks were not sent again
    assert reads.read == {str(path): len(data)}  # ... but read (once) to hash the whole file
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert stored_bytes(draft, "weights.gguf") == data


def test_a_chunk_damaged_on_the_way_is_refused_by_its_checksum_and_sent_again(live_server, vendor, draft, tmp_path):
    path, data = random_file(tmp_path, "weights.gguf", 2 * CHUNK + 10)
    proxy = Proxy(live_server.url, corrupt=True)
    try:
        result = upload_file(creation_url(proxy.url, draft), vendor.token, path, "weights.gguf", stored_url=None,
                             remember=lambda url: None, chunk_size=CHUNK, progress=False)
    finally:
        proxy.close()
    assert not proxy.corrupt and b" 460 " in proxy.answers  # one byte flipped, the server refused that chunk
    assert stored_bytes(draft, "weights.gguf") == data  # and the chunk sent again is the file's
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_changed_between_chunks_is_refused_and_its_upload_cancelled(live_server, vendor, draft, tmp_path):
    path, data = random_file(tmp_path, "weights.gguf", 3 * CHUNK)
    remembered: list[str | None] = []

    def change(end: int) -> None:
        if end == CHUNK:
            with open(path, "r+b") as fh:
                fh.seek(2 * CHUNK)
                fh.write(b"changed")
            os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    with pytest.raises(FileChanged) as refused:
        upload_file(creation_url(live_server.url, draft), vendor.token, path, "weights.gguf", stored_url=None,
                    remember=remembered.append, chunk_size=CHUNK, on_chunk=change, progress=False)
    assert refused.value.code == "file_changed"
    assert remembered[-1] is None and not Upload.objects.filter(version=draft).exists()
    assert not Artifact.objects.filter(version=draft).exists()


def test_a_file_changed_before_its_upload_resumed_is_rejected_by_the_declared_digest(live_server, vendor, draft, tmp_path):
    """The bytes already on the server are of the old file: the digest computed here now (of the
    new one) is declared at finalize, and the server's hash of what it stored does not match."""
    path, data = random_file(tmp_path, "weights.gguf", 3 * CHUNK)
    remembered: list[str | None] = []

    def stop(end: int) -> None:
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        upload_file(creation_url(live_server.url, draft), vendor.token, path, "weights.gguf", stored_url=None,
                    remember=remembered.append, chunk_size=CHUNK, on_chunk=stop, progress=False)
    changed = bytearray(data)
    changed[10] ^= 1  # inside the chunk the server has
    path.write_bytes(bytes(changed))

    result = upload_file(creation_url(live_server.url, draft), vendor.token, path, "weights.gguf", stored_url=remembered[0],
                         remember=remembered.append, chunk_size=CHUNK, progress=False)
    assert result.sha256 == hashlib.sha256(changed).hexdigest()
    services.version_finalize(version=draft, declared_files={"weights.gguf": result.sha256})
    version = services.version_hash_and_inspect(version_id=draft.pk)
    assert version.status == Version.Status.REJECTED
    assert version.error_code == "declared_digest_mismatch"


def test_several_files_go_up_at_once_each_on_its_own_connection(live_server, vendor, draft, tmp_path):
    files = {f"part-{i}.gguf": random_file(tmp_path, f"part-{i}.gguf", 3 * CHUNK + i) for i in range(3)}
    proxy = Proxy(live_server.url)
    try:
        results = upload_files(creation_url(proxy.url, draft), vendor.token,
                               [FileToUpload(path, name, None, lambda url: None) for name, (path, _) in files.items()],
                               workers=2, chunk_size=CHUNK, progress=False)
    finally:
        proxy.close()
    assert [r.name for r in results] == list(files)
    for result, (name, (_, data)) in zip(results, files.items(), strict=True):
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        assert stored_bytes(draft, name) == data
    assert proxy.most_open == 2  # two uploads at a time, never more


def test_an_upload_refused_by_the_server_names_its_code(live_server, vendor, draft, tmp_path, settings):
    settings.VENDOR_STORAGE_QUOTA = 1024
    path, _ = random_file(tmp_path, "weights.gguf", 2 * CHUNK)
    with pytest.raises(ApiError) as refused:
        upload_files(creation_url(live_server.url, draft), vendor.token, [FileToUpload(path, "weights.gguf", None, lambda url: None)],
                     chunk_size=CHUNK, progress=False)
    assert refused.value.code == "quota_exceeded" and refused.value.status == 413


class ForwardProxy:
    """A forwarding HTTP proxy (what HTTP_PROXY names): relays requests sent with an absolute URL,
    records each one (method, URL, Proxy-Authorization), and refuses CONNECT tunnels with 403."""

    def __init__(self):
        import http.client
        import http.server

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_CONNECT(self):
                seen.append(("CONNECT", self.path, self.headers.get("Proxy-Authorization")))
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def relay(self):
                seen.append((self.command, self.path, self.headers.get("Proxy-Authorization")))
                target = urlsplit(self.path)
                assert target.scheme == "http" and target.netloc, f"not an absolute URL: {self.path}"
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-") and k.lower() != "connection"}
                upstream = http.client.HTTPConnection(target.netloc, timeout=60)
                upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PATCH = do_HEAD = do_DELETE = do_OPTIONS = relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def forward_proxy(monkeypatch):
    proxy = ForwardProxy()
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield proxy
    proxy.close()


def test_uploads_go_through_the_proxy_the_environment_names(live_server, vendor, draft, tmp_path, monkeypatch, forward_proxy):
    """Like requests and curl: HTTP_PROXY (with its credentials) is used, NO_PROXY is honoured."""
    authority = forward_proxy.url.removeprefix("http://")
    monkeypatch.setenv("http_proxy", f"http://vendor%40acme:s3cr%3At@{authority}")
    monkeypatch.setenv("HTTP_PROXY", f"http://vendor%40acme:s3cr%3At@{authority}")
    path, data = random_file(tmp_path, "weights.gguf", 2 * CHUNK + 3)
    result = upload_file(creation_url(live_server.url, draft), vendor.token, path, "weights.gguf", stored_url=None,
                         remember=lambda url: None, chunk_size=CHUNK, progress=False)
    assert stored_bytes(draft, "weights.gguf") == data and result.sha256 == hashlib.sha256(data).hexdigest()
    methods = [method for method, _, _ in forward_proxy.seen]
    assert methods == ["POST", "PATCH", "PATCH", "PATCH"]
    assert all(url.startswith(f"{live_server.url}/api/v1/") for _, url, _ in forward_proxy.seen)
    import base64

    assert {auth for _, _, auth in forward_proxy.seen} == {"Basic " + base64.b64encode(b"vendor@acme:s3cr:t").decode()}

    forward_proxy.seen.clear()
    host = urlsplit(live_server.url).hostname
    monkeypatch.setenv("no_proxy", f"example.org,{host}")
    monkeypatch.setenv("NO_PROXY", f"example.org,{host}")
    path, data = random_file(tmp_path, "other.gguf", CHUNK + 1)
    upload_file(creation_url(live_server.url, draft), vendor.token, path, "other.gguf", stored_url=None,
                remember=lambda url: None, chunk_size=CHUNK, progress=False)
    assert stored_bytes(draft, "other.gguf") == data and forward_proxy.seen == []  # straight to the server

    # an IP network in NO_PROXY, as requests (the rest of the CLI) reads it: urllib alone does not
    by_address = live_server.url.replace("//localhost:", "//127.0.0.1:")
    assert by_address != live_server.url
    monkeypatch.setenv("no_proxy", "10.0.0.0/8,127.0.0.0/8")
    monkeypatch.setenv("NO_PROXY", "10.0.0.0/8,127.0.0.0/8")
    path, data = random_file(tmp_path, "cidr.gguf", CHUNK + 2)
    upload_file(creation_url(by_address, draft), vendor.token, path, "cidr.gguf", stored_url=None,
                remember=lambda url: None, chunk_size=CHUNK, progress=False)
    assert stored_bytes(draft, "cidr.gguf") == data and forward_proxy.seen == []
    monkeypatch.setenv("no_proxy", "10.0.0.0/8")  # a network that does not hold the server: the proxy again
    monkeypatch.setenv("NO_PROXY", "10.0.0.0/8")
    path, data = random_file(tmp_path, "via.gguf", CHUNK + 2)
    upload_file(creation_url(by_address, draft), vendor.token, path, "via.gguf", stored_url=None,
                remember=lambda url: None, chunk_size=CHUNK, progress=False)
    assert stored_bytes(draft, "via.gguf") == data and [m for m, _, _ in forward_proxy.seen] == ["POST", "PATCH", "PATCH"]


def test_https_uploads_tunnel_through_the_proxy_and_a_refused_tunnel_is_a_clear_error(tmp_path, monkeypatch, forward_proxy):
    monkeypatch.setattr(upload_module, "RETRY_DELAY", 0.0)
    monkeypatch.setenv("https_proxy", forward_proxy.url.replace("http://", "http://ops:pw@"))
    monkeypatch.setenv("HTTPS_PROXY", forward_proxy.url.replace("http://", "http://ops:pw@"))
    path, _ = random_file(tmp_path, "weights.gguf", 10)
    with pytest.raises(ApiError) as refused:
        upload_file("https://models.example.org/api/v1/vendor/models/m/versions/1/uploads", "hm_x", path, "weights.gguf",
                    stored_url=None, remember=lambda url: None, chunk_size=CHUNK, progress=False)
    assert refused.value.code == "unreachable" and "403" in str(refused.value)
    import base64

    assert forward_proxy.seen[0] == ("CONNECT", "models.example.org:443", "Basic " + base64.b64encode(b"ops:pw").decode())

    monkeypatch.setenv("https_proxy", "socks5://127.0.0.1:1080")
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ApiError) as unsupported:
        upload_file("https://models.example.org/api/v1/vendor/models/m/versions/1/uploads", "hm_x", path, "weights.gguf",
                    stored_url=None, remember=lambda url: None, chunk_size=CHUNK, progress=False)
    assert unsupported.value.code == "proxy_unsupported"
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:99999")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:99999")
    with pytest.raises(ApiError) as bad_port:
        upload_file("https://models.example.org/api/v1/vendor/models/m/versions/1/uploads", "hm_x", path, "weights.gguf",
                    stored_url=None, remember=lambda url: None, chunk_size=CHUNK, progress=False)
    assert bad_port.value.code == "proxy_unsupported" and "invalid port" in str(bad_port.value)
