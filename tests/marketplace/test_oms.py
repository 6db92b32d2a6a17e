"""OpenSSF Model Signing bundles: the vendor's P-256 key registered and bound in the signed
metadata, the bundle checked before the EIP-712 signature is taken, served as `model.sig` beside
the files, and accepted by the stock `model_signing verify key` after a real `snapshot_download`."""

import io
import json
import subprocess
import sys
from pathlib import Path

import model_signing
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from google.protobuf import json_format
from huggingface_hub import HfApi, snapshot_download
from model_signing._signing.signing import Payload

from hallmark import eip712, oms
from hallmark.manifest import FileDigest, build_statement, hash_directory, root_digest
from marketplace import services
from marketplace.models import Version
from tests.conftest import publish, purchase

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))
CONFIG = b'{"architecture": "llama"}'


def stock_verify(folder: Path, public_pem: Path, signature: Path) -> subprocess.CompletedProcess:
    """The stock verifier from PyPI, as a buyer runs it."""
    return subprocess.run(
        [MODEL_SIGNING, "verify", "key", "--signature", str(signature), "--public_key", str(public_pem), str(folder)],
        capture_output=True, text=True, timeout=120,
    )


def hashed_draft(vendor, model, files: dict[str, bytes]) -> Version:
    version = services.version_create(model=model)
    for name, data in files.items():
        services.artifact_upload(version=version, path=name, stream=io.BytesIO(data))
    services.version_finalize(version=version)
    return services.version_hash_and_inspect(version_id=version.pk)


def statement_files(version: Version) -> list[FileDigest]:
    return [FileDigest(r["name"], r["digest"], 0) for r in version.manifest["predicate"]["resources"]]


@pytest.fixture
def signing_key():
    return oms.generate_key()


@pytest.fixture
def registered_key(vendor, signing_key, live_server):
    answer = requests.post(
        f"{live_server.url}/api/v1/vendors/acme/keys", json={"public_key_pem": oms.public_key_pem(signing_key)},
        headers={"Authorization": f"Bearer {vendor.token}"}, timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture
def signed_version(chain, vendor, gguf_file, registered_key, signing_key):
    """acme/tiny v1 (a GGUF and a nested sidecar), its OMS bundle signed with the registered key."""
    first = publish(vendor, "base", {"model.gguf": gguf_file.read_bytes()})  # an anchored model to add versions to
    model = first.model
    version = hashed_draft(vendor, model, {"model.gguf": gguf_file.read_bytes(), "tokenizer/config.json": CONFIG})
    bundle = oms.sign_statement(signing_key, oms.signing_statement(model.repo_id, statement_files(version)))
    services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key), oms_bundle=bundle)
    version = services.version_anchor(version_id=version.pk)
    assert version.status == Version.Status.LIVE and version.oms_bundle is not None
    return version


def test_our_statement_has_the_root_digest_model_signing_computes_for_the_same_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.gguf").write_bytes(b"weights" * 1000)
    (tmp_path / "sub" / "config.json").write_bytes(CONFIG)
    (tmp_path / "README.md").write_bytes(b"# card")
    ours = build_statement("acme/tiny", hash_directory(tmp_path))
    theirs = json.loads(json_format.MessageToJson(Payload(model_signing.hashing.hash(tmp_path)).statement.pb))
    assert ours["subject"][0]["digest"] == theirs["subject"][0]["digest"]
    assert ours["predicate"]["resources"] == sorted(theirs["predicate"]["resources"], key=lambda r: r["name"])


def test_a_file_sorting_before_a_folder_of_its_prefix_still_verifies_with_the_stock_tool(tmp_path):
    """model_signing orders paths by their parts ("onnx/m" before "onnx.bin"), we by the string:
    the subject digests then differ, but the verifier recomputes the root in the order we list,
    so our bundle verifies."""
    folder = tmp_path / "m"
    (folder / "onnx").mkdir(parents=True)
    (folder / "onnx.bin").write_bytes(b"a")
    (folder / "onnx" / "model.onnx").write_bytes(b"b")
    files = hash_directory(folder)
    theirs = Payload(model_signing.hashing.hash(folder)).statement.pb.subject[0].digest["sha256"]
    assert theirs != root_digest(files)  # the known difference, pinned
    key = oms.generate_key()
    (folder / "model.sig").write_bytes(oms.bundle_bytes(oms.sign_statement(key, oms.signing_statement("acme/x", files))))
    (tmp_path / "key.pem").write_text(oms.public_key_pem(key))
    result = stock_verify(folder, tmp_path / "key.pem", folder / "model.sig")
    assert result.returncode == 0, result.stderr


def test_snapshot_download_then_the_stock_verifier_passes_and_a_changed_byte_fails(live_server, chain, signed_version, make_party, tmp_path):
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, signed_version.model.chain_model_id, buyer.key)
    listed = HfApi(endpoint=live_server.url, token=buyer.token).list_repo_files("acme/base", revision="v2")
    assert sorted(listed) == ["model.gguf", "model.sig", "tokenizer/config.json"]

    folder = tmp_path / "download"
    snapshot_download("acme/base", revision="v2", endpoint=live_server.url, token=buyer.token, local_dir=folder)
    assert (folder / ".cache" / "huggingface").is_dir()  # the client's own state stays in the folder
    keys = requests.get(f"{live_server.url}/api/v1/vendors/acme/keys", timeout=10).json()
    assert [k["sha256"] for k in keys] == [signed_version.metadata["signing_key"]["sha256"]]
    pem = tmp_path / "vendor.pem"
    pem.write_text(keys[0]["public_key_pem"])

    result = stock_verify(folder, pem, folder / "model.sig")
    assert result.returncode == 0 and "Verification succeeded" in result.stdout, result.stderr
    cache = Path(snapshot_download("acme/base", revision="v2", endpoint=live_server.url, token=buyer.token, cache_dir=tmp_path / "hf"))
    assert (cache / "model.sig").is_symlink()
    with pytest.raises(SystemExit) as exited:  # model.sig is beside the files, not one of them
        call_command("verify_model", str(cache), "acme/base", "v2", "--json")
    assert exited.value.code == 0

    with open(folder / "tokenizer" / "config.json", "r+b") as stream:
        stream.write(b"[")
    result = stock_verify(folder, pem, folder / "model.sig")
    assert result.returncode == 1 and "Hash mismatch for 'tokenizer/config.json'" in result.stderr


def test_model_sig_is_public_stable_and_the_same_through_every_door(live_server, signed_version):
    from marketplace.oms import OMS_BUNDLE_MEDIA_TYPE, oms_bundle_bytes

    body = oms_bundle_bytes(signed_version)
    assert body == oms_bundle_bytes(Version.objects.get(pk=signed_version.pk))
    rest = requests.get(f"{live_server.url}/api/v1/models/acme/base/versions/2/model.sig", timeout=10)
    assert rest.status_code == 200 and rest.content == body and rest.headers["Content-Type"] == OMS_BUNDLE_MEDIA_TYPE
    resolved = requests.get(f"{live_server.url}/acme/base/resolve/v2/model.sig", timeout=10)  # no token: public
    assert resolved.status_code == 200 and resolved.content == body
    assert resolved.headers["X-Repo-Commit"] == signed_version.commit_sha
    head = requests.head(f"{live_server.url}/acme/base/resolve/main/model.sig", timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(body)
    unsigned = requests.get(f"{live_server.url}/api/v1/models/acme/base/versions/1/model.sig", timeout=10)
    assert unsigned.status_code == 404 and unsigned.json()["code"] == "signature_unavailable"
    missing = requests.head(f"{live_server.url}/acme/base/resolve/v1/model.sig", timeout=10)
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"


def test_the_metadata_names_the_key_only_once_one_is_registered(chain, vendor, gguf_file, registered_key):
    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()})
    assert version.metadata["signing_key"] == {"algorithm": "ecdsa-p256-sha256", "sha256": registered_key["sha256"]}


def test_a_bad_bundle_refuses_the_signature_and_stores_nothing(live_server, chain, vendor, gguf_file, registered_key, signing_key):
    model = publish(vendor, "base", {"model.gguf": gguf_file.read_bytes()}).model
    version = hashed_draft(vendor, model, {"model.gguf": gguf_file.read_bytes(), "tokenizer/config.json": CONFIG})
    signature = eip712.sign_typed_data(version.typed_data, vendor.key)
    url = f"{live_server.url}/api/v1/vendor/models/base/versions/{version.pk}/signature"
    auth = {"Authorization": f"Bearer {vendor.token}"}
    files = statement_files(version)
    other_files = [f if f.name != "tokenizer/config.json" else FileDigest(f.name, "0" * 64, 0) for f in files]
    forged = oms.sign_statement(signing_key, oms.signing_statement(model.repo_id, files))
    forged["dsseEnvelope"]["signatures"][0]["sig"] = oms.sign_statement(signing_key, {"x": 1})["dsseEnvelope"]["signatures"][0]["sig"]
    cases = {
        "another key": oms.sign_statement(oms.generate_key(), oms.signing_statement(model.repo_id, files)),
        "other files": oms.sign_statement(signing_key, oms.signing_statement(model.repo_id, other_files)),
        "a signature over something else": forged,
        "not a bundle": {"mediaType": "text/plain"},
    }
    for why, bundle in cases.items():
        answer = requests.post(url, json={"signature": signature, "oms_bundle": bundle}, headers=auth, timeout=10)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_signature_bundle", (why, answer.text)
    huge = requests.post(
        url, data=b'{"signature": "' + signature.encode() + b'", "oms_bundle": "' + b"A" * (oms.MAX_BUNDLE_BYTES + 8192) + b'"}',
        headers={**auth, "Content-Type": "application/json"}, timeout=30,
    )
    assert huge.status_code == 413 and huge.json()["code"] == "invalid_signature_bundle"
    version.refresh_from_db()
    assert version.status == Version.Status.AWAITING_SIGNATURE and version.oms_bundle is None and not version.signature

    good = oms.sign_statement(signing_key, oms.signing_statement(model.repo_id, files))
    answer = requests.post(url, json={"signature": signature, "oms_bundle": good}, headers=auth, timeout=10)
    assert answer.status_code == 202, answer.text
    version.refresh_from_db()
    assert oms.verify_bundle(version.oms_bundle, oms.public_key_pem(signing_key)).digests == {f.name: f.sha256 for f in files}


def test_a_bundle_for_a_version_hashed_before_the_key_is_refused(chain, vendor, gguf_file, signing_key):
    model = publish(vendor, "base", {"model.gguf": gguf_file.read_bytes()}).model
    version = hashed_draft(vendor, model, {"model.gguf": gguf_file.read_bytes()})
    services.vendor_signing_key_register(vendor=vendor.vendor, public_key_pem=oms.public_key_pem(signing_key))
    bundle = oms.sign_statement(signing_key, oms.signing_statement(model.repo_id, statement_files(version)))
    from marketplace.errors import Conflict

    with pytest.raises(Conflict) as refused:
        services.version_submit_signature(version=version, signature=eip712.sign_typed_data(version.typed_data, vendor.key), oms_bundle=bundle)
    assert refused.value.code == "signing_key_not_bound"


def test_keys_are_p256_only_registered_by_their_vendor_and_listed_publicly(live_server, chain, vendor, make_party, signing_key):
    other = make_party("other", chain.keys[3], vendor_slug="other")
    url = f"{live_server.url}/api/v1/vendors/acme/keys"
    pem = oms.public_key_pem(signing_key)
    assert requests.post(url, json={"public_key_pem": pem}, headers={"Authorization": f"Bearer {other.token}"}, timeout=10).status_code == 403
    assert requests.post(url, json={"public_key_pem": pem}, timeout=10).status_code in (401, 403)
    p384 = oms.public_key_pem(ec.generate_private_key(ec.SECP384R1()).public_key())
    for bad in (p384, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "x" * 5000):
        answer = requests.post(url, json={"public_key_pem": bad}, headers={"Authorization": f"Bearer {vendor.token}"}, timeout=10)
        assert answer.status_code == 400, answer.text
    first = requests.post(url, json={"public_key_pem": pem}, headers={"Authorization": f"Bearer {vendor.token}"}, timeout=10).json()
    newer = oms.public_key_pem(oms.generate_key())
    requests.post(url, json={"public_key_pem": newer}, headers={"Authorization": f"Bearer {vendor.token}"}, timeout=10)
    listed = requests.get(url, timeout=10).json()
    assert [(k["sha256"], k["current"]) for k in listed] == [(oms.key_sha256(newer), True), (first["sha256"], False)]
    assert requests.get(f"{live_server.url}/api/v1/vendors/nobody/keys", timeout=10).status_code == 404


def test_model_sig_cannot_be_uploaded_as_a_file_of_a_version(chain, vendor, gguf_file):
    from marketplace.errors import MarketplaceError

    model = publish(vendor, "base", {"model.gguf": gguf_file.read_bytes()}).model
    version = services.version_create(model=model)
    with pytest.raises(MarketplaceError) as refused:
        services.artifact_upload(version=version, path="model.sig", stream=io.BytesIO(b"{}"))
    assert refused.value.code == "unsafe_path"


def test_a_bundle_the_stock_signer_wrote_passes_our_check(tmp_path):
    """`model_signing sign key` on the vendor's own folder gives a bundle the server accepts."""
    folder = tmp_path / "m"
    (folder / "onnx").mkdir(parents=True)
    (folder / "onnx.bin").write_bytes(b"a")
    (folder / "onnx" / "model.onnx").write_bytes(b"b")
    key = oms.generate_key()
    (tmp_path / "key.pem").write_bytes(oms.private_key_pem(key))
    signed = subprocess.run(
        [MODEL_SIGNING, "sign", "key", "--private_key", str(tmp_path / "key.pem"), "--signature", str(tmp_path / "model.sig"), str(folder)],
        capture_output=True, text=True, timeout=120,
    )
    assert signed.returncode == 0, signed.stderr
    checked = oms.verify_bundle(oms.parse_bundle((tmp_path / "model.sig").read_bytes()), oms.public_key_pem(key))
    assert checked.digests == {f.name: f.sha256 for f in hash_directory(folder)}
    with pytest.raises(oms.SignatureBundleError):
        oms.verify_bundle(oms.parse_bundle((tmp_path / "model.sig").read_bytes()), oms.public_key_pem(oms.generate_key()))


def test_the_seeded_demo_version_carries_a_model_sig_the_stock_verifier_accepts(chain, settings, live_server, tmp_path):
    settings.PUBLIC_BASE_URL = live_server.url
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    demo = json.loads(out.getvalue())
    folder = tmp_path / "demo"
    snapshot_download(demo["repo_id"], revision="main", endpoint=live_server.url, token=demo["licensed_token"], local_dir=folder)
    assert (folder / "model.sig").is_file()
    (tmp_path / "demo.pem").write_text(demo["vendor_public_key_pem"])
    result = stock_verify(folder, tmp_path / "demo.pem", folder / "model.sig")
    assert result.returncode == 0, result.stderr
    version = Version.objects.get()
    assert version.metadata["signing_key"]["sha256"] == oms.key_sha256(demo["vendor_public_key_pem"])
