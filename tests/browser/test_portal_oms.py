"""The vendor's OpenSSF Model Signing key in the portal: made in the browser (WebCrypto), kept in
its IndexedDB, registered with the vendor, exported to and imported from a PKCS#8 PEM file. A
version published from the portal carries a `model.sig` signed in the browser that the stock
`model_signing verify key` accepts after a real `snapshot_download`; a key other than the one the
version's metadata names is refused before the wallet is asked, with what to do."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from huggingface_hub import snapshot_download

from hallmark import oms
from marketplace import services
from marketplace.models import VendorSigningKey, Version
from tests.conftest import publish, purchase

from .conftest import DESKTOP, PHONE, log_in
from .test_accessibility import axe_page, check  # noqa: F401  (the fixture: a context that lets axe in)

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))
PASSWORD = "correct horse battery staple 9"
CONFIG = b'{"architecture": "llama"}'


def stock_verify(folder: Path, public_pem: Path) -> subprocess.CompletedProcess:
    """The stock verifier from PyPI, as a buyer runs it."""
    return subprocess.run(
        [MODEL_SIGNING, "verify", "key", "--signature", str(folder / "model.sig"), "--public_key", str(public_pem), str(folder)],
        capture_output=True, text=True, timeout=120,
    )


def shoot(page, name: str, tmp_path: Path, viewport_name: str):
    """No sideways scrolling; a screenshot to SCREENSHOT_DIR (docs/screenshots/ under `make screenshots`)."""
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name} scrolls sideways by {overflow}px at {viewport_name} width"
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}-{viewport_name}.png"), full_page=True)


def vendor_page(open_page, base, vendor, viewport=DESKTOP):
    if not vendor.user.has_usable_password():  # set once: a new password ends the sessions signed in before
        vendor.user.set_password(PASSWORD)
        vendor.user.save()
    page = open_page(account=vendor.address, viewport=viewport)
    log_in(page, base, "vendor", PASSWORD)
    return page


def export_key(page, path: Path) -> Path:
    with page.expect_download() as download:
        page.get_by_role("button", name="Export key file").click()
    assert download.value.suggested_filename == "acme-oms-signing-key.pem"
    download.value.save_as(path)
    return path


def hashed_draft(model, gguf_file) -> Version:
    draft = services.version_create(model=model)
    services.artifact_upload(version=draft, path="model.gguf", stream=io.BytesIO(gguf_file.read_bytes()))
    services.version_finalize(version=draft)
    return services.version_hash_and_inspect(version_id=draft.pk)


def test_a_key_made_in_the_browser_signs_a_version_the_stock_verifier_accepts(
    chain, celery_worker, live_server, open_page, vendor, gguf_file, make_party, tmp_path
):
    base = live_server.url
    model = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}).model  # v1, before any key
    page = vendor_page(open_page, base, vendor)

    page.goto(f"{base}/portal/")
    page.get_by_role("link", name="Signing key").click()
    page.locator("#browser-key", has_text="holds no signing key").wait_for()
    page.get_by_role("button", name="Generate a key").click()
    page.locator("#key-status", has_text="New key made").wait_for()
    sha = page.locator("#browser-key-sha").inner_text()
    assert page.get_by_role("button", name="Register with acme").is_visible()
    page.get_by_role("button", name="Register with acme").click()
    page.locator("#browser-key", has_text="holds your current key").wait_for()
    registered = VendorSigningKey.objects.get(vendor=vendor.vendor)
    assert (registered.sha256, registered.retired_at) == (sha, None)
    assert page.locator("#browser-key-pem").inner_text().strip() == registered.public_key_pem.strip()
    assert page.locator(f"#registered-keys tr[data-sha256='{sha}'] .badge").inner_text() == "current"
    assert page.get_by_role("button", name="Register with acme").is_hidden()
    shoot(page, "signing-key", tmp_path, "desktop")

    # the exported file is the key, as the CLI and model_signing read it
    key_file = export_key(page, tmp_path / "exported.pem")
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")
    assert oms.key_sha256(oms.load_private_key(key_file)) == sha

    # another browser (its own IndexedDB) holds nothing until the file is imported
    other = vendor_page(open_page, base, vendor)
    other.goto(f"{base}/portal/signing-key")
    other.locator("#browser-key", has_text="holds no signing key").wait_for()
    other.set_input_files("#key-file", str(key_file))
    other.locator("#key-status", has_text=f"Imported the key {sha[:16]}").wait_for()
    assert other.locator("#browser-key-sha").inner_text() == sha
    assert "holds your current key" in other.locator("#browser-key").inner_text()
    assert oms.key_sha256(oms.load_private_key(export_key(other, tmp_path / "again.pem"))) == sha

    # publish v2 from the portal: the browser signs the OMS statement, the wallet PublishVersion
    page.goto(f"{base}/portal/models/tiny")
    page.get_by_role("button", name="New version").click()
    page.wait_for_url(f"{base}/portal/models/tiny/versions/*")
    config = tmp_path / "config.json"
    config.write_bytes(CONFIG)
    page.set_input_files("#file-input", [str(gguf_file), str(config)])
    page.locator(".upload.done").nth(1).wait_for(timeout=60_000)
    page.get_by_role("button", name="Finish and hash").click()
    page.locator("#oms-status[data-state=ready]").wait_for(timeout=60_000)
    assert sha[:16] in page.locator("#oms-status").inner_text()
    assert page.get_by_role("button", name="Publish without model.sig").is_hidden()
    shoot(page, "publish-model-sig", tmp_path, "desktop")
    page.get_by_role("button", name="Sign in my wallet").click()
    page.get_by_text("Live as v2").wait_for(timeout=60_000)
    version = Version.objects.get(model=model, number=2)
    assert version.status == Version.Status.LIVE and version.metadata["signing_key"]["sha256"] == sha
    assert oms.verify_bundle(version.oms_bundle, registered.public_key_pem).digests == {
        "config.json": version.artifacts.get(path="config.json").sha256,
        "model.gguf": version.artifacts.get(path="model.gguf").sha256,
    }

    # a buyer downloads it with huggingface_hub and checks it with the stock tool and the published key
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, model.chain_model_id, buyer.key)
    folder = tmp_path / "download"
    snapshot_download("acme/tiny", revision="v2", endpoint=live_server.url, token=buyer.token, local_dir=folder)
    keys = requests.get(f"{base}/api/v1/vendors/acme/keys", timeout=10).json()
    pem = tmp_path / "vendor.pem"
    pem.write_text(keys[0]["public_key_pem"])
    result = stock_verify(folder, pem)
    assert result.returncode == 0 and "Verification succeeded" in result.stdout, result.stderr
    with open(folder / "config.json", "r+b") as stream:
        stream.write(b"[")
    assert stock_verify(folder, pem).returncode == 1
    page.errors.check()
    other.errors.check()


def test_a_key_the_version_does_not_name_is_refused_and_the_cli_key_file_imports(chain, celery_worker, live_server, open_page, vendor, gguf_file, tmp_path):
    base = live_server.url
    model = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}).model
    cli_key = oms.generate_key()  # what `hallmark keys init` writes, registered as `hallmark keys register` does
    (tmp_path / "oms-signing-key.pem").write_bytes(oms.private_key_pem(cli_key))
    services.vendor_signing_key_register(vendor=vendor.vendor, public_key_pem=oms.public_key_pem(cli_key))
    draft = hashed_draft(model, gguf_file)
    bound = draft.metadata["signing_key"]["sha256"]
    assert bound == oms.key_sha256(cli_key)
    page = vendor_page(open_page, base, vendor, viewport=PHONE)
    draft_url = f"{base}/portal/models/tiny/versions/{draft.pk}"

    # no key in this browser: said, and the version can still be published without model.sig
    page.goto(draft_url)
    page.locator("#oms-status[data-state=missing]", has_text="this browser holds no signing key").wait_for()
    assert page.get_by_role("button", name="Publish without model.sig").is_visible()

    # another key in this browser: refused before the wallet is asked, nothing stored
    page.goto(f"{base}/portal/signing-key")
    page.get_by_role("button", name="Generate a key").click()
    page.locator("#key-status", has_text="New key made").wait_for()
    other_sha = page.locator("#browser-key-sha").inner_text()
    assert "not registered with acme" in page.locator("#browser-key").inner_text()
    page.goto(draft_url)
    page.locator("#oms-status[data-state=mismatch]").wait_for()
    page.get_by_role("button", name="Sign in my wallet").click()
    refusal = page.locator("#pipeline-status", has_text="Not signed")
    refusal.wait_for()
    assert f"names the signing key {bound[:16]}" in refusal.inner_text() and f"holds {other_sha[:16]}" in refusal.inner_text()
    assert "Import the key file" in refusal.inner_text()
    shoot(page, "publish-model-sig-refused", tmp_path, "phone")
    draft.refresh_from_db()
    assert draft.status == Version.Status.AWAITING_SIGNATURE and draft.signature == "" and draft.oms_bundle is None

    # replacing a key asks twice; then the CLI's key file imports and signs the draft
    page.goto(f"{base}/portal/signing-key")
    page.get_by_role("button", name="Replace with a new key").click()
    page.locator("#key-status", has_text="Click again to replace it").wait_for()
    assert page.locator("#browser-key-sha").inner_text() == other_sha
    page.set_input_files("#key-file", str(tmp_path / "oms-signing-key.pem"))
    page.locator("#key-status", has_text=f"Imported the key {bound[:16]}").wait_for()
    assert "holds your current key" in page.locator("#browser-key").inner_text()
    shoot(page, "signing-key", tmp_path, "phone")
    page.goto(draft_url)
    page.locator("#oms-status[data-state=ready]").wait_for()
    page.get_by_role("button", name="Sign in my wallet").click()
    page.get_by_text("Live as v2").wait_for(timeout=60_000)
    draft.refresh_from_db()
    assert draft.status == Version.Status.LIVE
    assert oms.verify_bundle(draft.oms_bundle, oms.public_key_pem(cli_key)).key_sha256 == bound

    # a file that is not a P-256 private key is refused with what it is
    (tmp_path / "public.pem").write_text(oms.public_key_pem(cli_key))
    page.goto(f"{base}/portal/signing-key")
    page.set_input_files("#key-file", str(tmp_path / "public.pem"))
    page.locator("#key-status", has_text="holds no private key").wait_for()
    assert page.locator("#browser-key-sha").inner_text() == bound  # the key kept is unchanged
    page.errors.check()


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_the_key_step_has_no_wcag_a_or_aa_violations(chain, live_server, axe_page, vendor, gguf_file, tmp_path, viewport_name):  # noqa: F811
    """The signing key page without a key and with one, and the signing step naming a key this browser lacks."""
    model = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}).model
    cli_key = oms.generate_key()
    services.vendor_signing_key_register(vendor=vendor.vendor, public_key_pem=oms.public_key_pem(cli_key))
    draft = hashed_draft(model, gguf_file)
    (tmp_path / "key.pem").write_bytes(oms.private_key_pem(cli_key))
    vendor.user.set_password(PASSWORD)
    vendor.user.save()
    base = live_server.url
    page = axe_page(DESKTOP if viewport_name == "desktop" else PHONE)
    log_in(page, base, "vendor", PASSWORD)
    page.goto(f"{base}/portal/models/tiny/versions/{draft.pk}")
    page.locator("#oms-status[data-state=missing]").wait_for()
    found = check(page, "signing step (no key)")
    page.goto(f"{base}/portal/signing-key")
    page.locator("#browser-key", has_text="holds no signing key").wait_for()
    found += check(page, "signing key (none)")
    page.set_input_files("#key-file", str(tmp_path / "key.pem"))
    page.locator("#browser-key", has_text="holds your current key").wait_for()
    found += check(page, "signing key (current)")
    assert not found, "accessibility violations (WCAG 2 A/AA):\n" + "\n".join(found)
    assert not page.errors, f"errors in the pages: {page.errors}"
