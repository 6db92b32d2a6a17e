"""A vendor publishes from the browser, signed in their own wallet (an EIP-1193 provider backed by
anvil), with a real Celery worker and the real contract: sign up, link the wallet, create the
model, upload a GGUF (reloading the page mid-upload), sign, and see the version go live."""

import hashlib

import pytest

from marketplace.demo import write_demo_gguf
from marketplace.models import Model, Version

from .conftest import sign_up

pytestmark = pytest.mark.django_db(transaction=True)


def become_vendor(page, base, slug="acme"):
    page.get_by_role("button", name="Link a wallet").click()
    page.get_by_text("Linked 0x").wait_for()
    page.goto(f"{base}/portal/")
    page.get_by_label("Vendor name").fill(slug)
    page.get_by_role("button", name="Register as vendor").click()
    page.get_by_text(f"Publishing as {slug}").wait_for()


def create_model(page, base, slug, *, price="0.001"):
    page.goto(f"{base}/portal/models/new")
    page.get_by_label("Model name (in the repo id)").fill(slug)
    page.get_by_label("Display name").fill("Tiny from the browser")
    page.get_by_label("Model card (Markdown, optional YAML front matter)").fill("---\nlicense: apache-2.0\ntags: [gguf]\n---\n# Tiny\nRuns on a phone.")
    page.get_by_label("Price (ETH)").fill(price)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(f"{base}/portal/models/{slug}")


def test_a_vendor_publishes_a_version_from_the_browser(chain, celery_worker, live_server, open_page, settings, tmp_path):
    settings.PORTAL_UPLOAD_CHUNK_SIZE = 64 * 1024  # many chunks, so the reload lands mid-upload
    base = live_server.url
    vendor = chain.account(1).address
    page = open_page(account=vendor)
    sign_up(page, base, "vendor1")
    become_vendor(page, base)
    create_model(page, base, "tiny")

    page.get_by_role("button", name="Sign for the relayer (no gas)").click()
    page.locator("#model-status", has_text="registered on chain").wait_for(timeout=60_000)
    assert Model.objects.get(slug="tiny").status == Model.Status.LIVE

    page.get_by_role("button", name="New version").click()
    page.wait_for_url(f"{base}/portal/models/tiny/versions/*")
    model_file = tmp_path / "tiny.gguf"
    write_demo_gguf(model_file, layers=4, width=128)
    size = model_file.stat().st_size

    # hold the upload after a few chunks, reload the page, and choose the same file again
    patches = {"n": 0}

    def hold(route):
        patches["n"] += 1
        if patches["n"] > 3:
            route.abort()
        else:
            route.continue_()

    page.route("**/api/v1/uploads/*", lambda route: hold(route) if route.request.method == "PATCH" else route.continue_())
    page.set_input_files("#file-input", str(model_file))
    page.wait_for_function("() => Number(document.querySelector('.upload')?.dataset.sent || 0) > 0")
    sent_before = int(page.locator(".upload").get_attribute("data-sent"))
    assert 0 < sent_before < size
    page.unroute("**/api/v1/uploads/*")
    page.reload()
    page.set_input_files("#file-input", str(model_file))
    page.locator(".upload.done").wait_for(timeout=60_000)
    assert page.locator(".upload").get_attribute("data-resumed") == "true"

    page.get_by_role("button", name="Finish and hash").click()
    page.locator("#sign-section").wait_for(state="visible", timeout=60_000)
    version = Version.objects.get(model__slug="tiny")
    assert page.locator("#sign-root").inner_text() == "0x" + version.root_digest
    assert page.locator("dd[data-fact=architecture]").inner_text() == "llama"
    assert version.artifacts.get().sha256 == hashlib.sha256(model_file.read_bytes()).hexdigest()

    page.get_by_role("button", name="Sign in my wallet").click()
    page.get_by_text("Live as v1").wait_for(timeout=60_000)
    assert Version.objects.get(pk=version.pk).status == Version.Status.LIVE

    page.goto(f"{base}/acme/tiny")
    assert page.locator(".badge-verified").inner_text().endswith("verified on chain")
    assert "Runs on a phone." in page.locator(".model-card").inner_text()
    page.errors.check()


def test_a_model_registered_from_the_vendors_own_wallet(chain, celery_worker, live_server, open_page):
    base = live_server.url
    page = open_page(account=chain.account(2).address)
    sign_up(page, base, "vendor2")
    become_vendor(page, base, slug="selfpay")
    create_model(page, base, "direct")
    page.get_by_role("button", name="Send from my wallet").click()
    page.locator("#model-status", has_text="registered on chain").wait_for(timeout=60_000)
    model = Model.objects.get(slug="direct")
    assert model.status == Model.Status.LIVE and model.create_transaction is None  # the vendor paid, not the relayer
    page.errors.check()


def test_without_a_wallet_the_page_says_what_to_do(live_server, open_page):
    base = live_server.url
    page = open_page(account=None)
    sign_up(page, base, "nowallet")
    assert "No browser wallet found" in page.locator("#wallet-status").inner_text()
    assert page.get_by_role("button", name="Link a wallet").is_disabled()


def test_a_second_vendor_cannot_open_the_first_ones_draft(chain, live_server, open_page, make_party, vendor):
    from marketplace import services
    from tests.conftest import publish

    version = publish(vendor, "tiny", {"a.json": b"{}"})
    draft = services.version_create(model=version.model)
    base = live_server.url
    page = open_page(account=chain.account(5).address)
    sign_up(page, base, "intruder")
    response = page.goto(f"{base}/portal/models/tiny/versions/{draft.pk}")
    assert response.status == 404
    assert page.goto(f"{base}/portal/models/tiny").status == 404


def test_the_vendor_revokes_a_version_in_the_wallet(chain, settings, live_server, open_page, vendor, gguf_file):
    from registry.indexer import indexer_run
    from tests.conftest import publish

    from .conftest import log_in

    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    vendor.user.set_password("correct horse battery staple 9")
    vendor.user.save()
    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()})
    base = live_server.url
    page = open_page(account=vendor.address)
    log_in(page, base, "vendor")
    page.goto(f"{base}/portal/models/tiny/versions/{version.pk}")
    page.get_by_label("Reason (short)").fill("weights leaked")
    page.get_by_role("button", name="Revoke this version").click()
    page.get_by_text("Revocation sent").wait_for()
    indexer_run()
    version.refresh_from_db()
    assert version.revoked and bytes.fromhex(version.revoked_reason[2:]).rstrip(b"\0") == b"weights leaked"
    page.goto(f"{base}/acme/tiny")
    assert "revoked" in page.locator(".badge").first.inner_text()
    page.errors.check()


def test_the_vendor_changes_terms_from_the_wallet(chain, settings, live_server, open_page, vendor, gguf_file):
    from registry.indexer import indexer_run
    from tests.conftest import publish

    from .conftest import log_in

    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    vendor.user.set_password("correct horse battery staple 9")
    vendor.user.save()
    version = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    base = live_server.url
    page = open_page(account=vendor.address)
    log_in(page, base, "vendor")
    page.goto(f"{base}/portal/models/tiny")
    page.get_by_label("Price (ETH)").fill("0.05")
    page.get_by_label("Perpetual licence").uncheck()
    page.get_by_label("Licence length (days)").fill("30")
    page.get_by_role("button", name="Send new terms").click()
    page.get_by_text("New terms sent").wait_for()
    indexer_run()
    model = Model.objects.get(pk=version.model_id)
    assert (model.price_wei, model.license_duration, model.listed) == (5 * 10**16, 30 * 86400, True)
    page.errors.check()
