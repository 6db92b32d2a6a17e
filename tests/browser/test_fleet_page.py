"""The owner's Fleet page in Chromium at desktop and phone widths: two devices with their signed
inventories, the one running a revoked version and the one running an outdated one marked in
words (not colour alone), no WCAG A/AA violation, no sideways scrolling; removing a device there
frees it. Screenshots: fleet-desktop.png, fleet-phone.png (make screenshots)."""

import pytest
from django.test import Client

from marketplace import services
from tests.conftest import publish, publish_version, purchase
from tests.fleet.conftest import enrol as enrol  # noqa: F401,PLC0414 - the fixture
from tests.fleet.test_inventory import _inventory, report

from .conftest import DESKTOP, PHONE, log_in
from .test_accessibility import axe_page as axe_page  # noqa: F401,PLC0414 - the fixture
from .test_accessibility import check
from .test_buyer_pages import _no_sideways_scroll
from .test_pages import shots_dir

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct horse battery staple 9"


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def fleet(chain, settings, make_party, gguf_file, client, enrol):  # noqa: F811
    settings.DEVICE_AUTH_RATE_LIMIT = "1000000/min"
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    tiny = publish(vendor, "tiny", {"model.gguf": gguf_file.read_bytes()}, price=10**15)
    chat = publish(vendor, "chat", {"chat.gguf": gguf_file.read_bytes()}, price=10**15)
    newer = publish_version(vendor, chat.model, {"chat.gguf": gguf_file.read_bytes(), "README.md": b"v2"})
    owner = make_party("owner", chain.keys[2])
    owner.user.set_password(PASSWORD)
    owner.user.save()
    for model in (tiny.model, chat.model):
        purchase(chain, model.chain_model_id, owner.key)
    shelf, gate = enrol(owner, "shelf-cam-17"), enrol(owner, "gate-sensor-3")
    assert report(client, shelf, _inventory(shelf, tiny)).status_code == 200
    outdated = _inventory(gate, chat)
    outdated["models"][0]["repo_id"] = "acme/chat"
    assert report(client, gate, outdated).status_code == 200
    services.version_mark_revoked(model=tiny.model, number=1, reason="0x" + "00" * 32)  # what VersionRevoked does
    return {"owner": owner, "shelf": shelf, "gate": gate, "newer": newer}


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_fleet_page_marks_revoked_and_outdated_devices_and_removes_one(fleet, live_server, axe_page, tmp_path, viewport_name):  # noqa: F811
    base = live_server.url
    page = axe_page(DESKTOP if viewport_name == "desktop" else PHONE)
    log_in(page, base, "owner", PASSWORD)
    page.get_by_role("link", name="Fleet").click()
    page.wait_for_url(f"{base}/portal/fleet")
    page.get_by_role("heading", name="Fleet", exact=True).wait_for()
    assert "2 installed models on your devices are on a revoked or outdated version" in page.inner_text("main")
    shelf = page.locator("section.fleet-device", has_text="shelf-cam-17")
    gate = page.locator("section.fleet-device", has_text="gate-sensor-3")
    assert "revoked by its vendor" in shelf.inner_text()
    assert "outdated: v2 is out" in gate.inner_text()
    assert shelf.locator("tr.flagged").count() == 1 and gate.locator("tr.flagged").count() == 1
    _no_sideways_scroll(page, "fleet")
    found = check(page, "fleet")
    assert not found, "accessibility violations (WCAG 2 A/AA):\n" + "\n".join(found)
    page.screenshot(path=str(shots_dir(tmp_path) / f"fleet-{viewport_name}.png"), full_page=True)

    shelf.get_by_role("button", name="Remove this device").click()
    page.get_by_text("Device shelf-cam-17 removed").wait_for()
    assert "removed" in page.locator("section.fleet-device", has_text="shelf-cam-17").inner_text()
    assert page.locator("section.fleet-device", has_text="shelf-cam-17").get_by_role("button").count() == 0
    token_answer = Client().get("/api/v1/devices/me", HTTP_AUTHORIZATION=f"Bearer {fleet['shelf'].token}")
    assert (token_answer.status_code, token_answer.json()["code"]) == (403, "device_revoked")
    assert not page.errors, f"errors in the page: {page.errors}"
