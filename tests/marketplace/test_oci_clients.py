"""Real OCI clients against a live marketplace: Debian's `skopeo` copies a licensed version into an
OCI layout, PyPI's `oras` pulls its files; both are refused (DENIED) without a licence. The
layer digests are the published SHA-256s, whose root digest is the chain's."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import oras.client
import pytest
import requests

from hallmark.manifest import FileDigest, root_digest
from marketplace.models import Download
from tests.conftest import publish_version, purchase

pytestmark = pytest.mark.django_db(transaction=True)

SKOPEO = "/usr/bin/skopeo"  # Debian's package (the Makefile's `test` target installs it)


@pytest.fixture
def registry(live_server, settings):
    """`host:port` of the live server, which the token challenge's realm names."""
    address = urlsplit(live_server.url)
    settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{address.port}"
    return f"127.0.0.1:{address.port}"


def skopeo_copy(registry: str, token: str, reference: str, layout: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            SKOPEO, "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds", f"anyone:{token}",
            f"docker://{registry}/acme/tiny:{reference}", f"oci:{layout}:{reference}",
        ],
        capture_output=True, text=True, timeout=120,
    )


def test_skopeo_copies_a_licensed_version_into_an_oci_layout_of_the_published_digests(chain, registry, live_version, make_party, gguf_file, tmp_path):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    layout = tmp_path / "layout"
    copied = skopeo_copy(registry, buyer.token, "v1", layout)
    assert copied.returncode == 0, copied.stderr

    index = json.loads((layout / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / entry["digest"][7:]).read_text())
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    for path in blobs.iterdir():  # every blob is stored under its own SHA-256
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    [layer] = manifest["layers"]
    published = live_version.artifacts.get(path="model.gguf").sha256
    assert layer["digest"] == f"sha256:{published}" and (blobs / published).read_bytes() == gguf_file.read_bytes()
    files = [FileDigest(x["annotations"]["org.cncf.model.filepath"], x["digest"][7:], x["size"]) for x in manifest["layers"]]
    assert root_digest(files) == live_version.root_digest  # what versionDigest holds on chain
    assert Download.objects.filter(user=buyer.user, path="model.gguf", method="GET", status_code=200).count() == 1


def test_skopeo_without_a_licence_is_denied(chain, registry, live_version, make_party, tmp_path):
    stranger = make_party("stranger", chain.keys[3])
    copied = skopeo_copy(registry, stranger.token, "main", tmp_path / "layout")
    assert copied.returncode != 0
    published = live_version.artifacts.get(path="model.gguf").sha256
    # skopeo 1.9 names the status only; the body is the OCI error DENIED (test_oci.py), and the
    # refusal is recorded as every refused download is
    assert f"reading blob sha256:{published}" in copied.stderr and "403 (Forbidden)" in copied.stderr, copied.stderr
    assert Download.objects.get(user=stranger.user, path="model.gguf", method="GET").error_code == "GatedRepo"
    assert not (tmp_path / "layout" / "blobs" / "sha256" / published).exists()


def test_oras_pulls_the_files_of_a_licensed_version_and_is_denied_without_one(chain, registry, live_version, vendor, make_party, gguf_file, tmp_path):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    tokenizer = b'{"version": "1.0", "model": {"type": "BPE"}}'
    publish_version(vendor, live_version.model, {"model.gguf": gguf_file.read_bytes(), "tokenizer/tokenizer.json": tokenizer})
    client = oras.client.OrasClient(hostname=registry, insecure=True)
    client.auth.set_basic_auth("anyone", buyer.token)  # what `oras login` keeps, without writing ~/.docker
    pulled = client.pull(target=f"{registry}/acme/tiny:main", outdir=str(tmp_path / "pulled"))
    assert sorted(Path(p).relative_to(tmp_path / "pulled").as_posix() for p in pulled) == ["model.gguf", "tokenizer/tokenizer.json"]
    assert (tmp_path / "pulled" / "model.gguf").read_bytes() == gguf_file.read_bytes()
    assert (tmp_path / "pulled" / "tokenizer" / "tokenizer.json").read_bytes() == tokenizer

    stranger = make_party("stranger", chain.keys[3])
    refused = oras.client.OrasClient(hostname=registry, insecure=True)
    refused.auth.set_basic_auth("anyone", stranger.token)
    with pytest.raises(requests.HTTPError) as caught:
        refused.pull(target=f"{registry}/acme/tiny:v1", outdir=str(tmp_path / "refused"))
    assert caught.value.response.status_code == 403  # DENIED (the body is closed with the stream)
    assert Download.objects.filter(user=stranger.user, path="model.gguf", method="GET", error_code="GatedRepo").exists()
    assert not (tmp_path / "refused" / "model.gguf").exists() or (tmp_path / "refused" / "model.gguf").stat().st_size == 0
