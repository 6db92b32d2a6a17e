"""Portal rules: a vendor sees and changes only their own models and drafts (each object-level
rule), CSRF on every form, a Content-Security-Policy without inline scripts, and model cards that
cannot carry a script."""

import re

import pytest
from django.test import Client

from marketplace.cards import render_card
from marketplace.models import Model
from registry import chain as chain_mod
from tests.conftest import publish

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 9"


@pytest.fixture
def two_vendors(chain, make_party, gguf_file):
    owner = make_party("owner", chain.keys[1], vendor_slug="acme")
    other = make_party("other", chain.keys[4], vendor_slug="other")
    for party in (owner, other):
        party.user.set_password(PASSWORD)
        party.user.save()
    version = publish(owner, "tiny", {"model.gguf": gguf_file.read_bytes()})
    from marketplace import services

    draft = services.version_create(model=version.model)
    return owner, other, version, draft


def logged_in(party, enforce_csrf=False):
    client = Client(enforce_csrf_checks=enforce_csrf)
    assert client.login(username=party.user.username, password=PASSWORD)
    return client


OWNED_PAGES = [
    ("get", "/portal/models/tiny"),
    ("get", "/portal/models/tiny/edit"),
    ("post", "/portal/models/tiny/edit"),
    ("post", "/portal/models/tiny/registered"),
    ("post", "/portal/models/tiny/terms-call"),
    ("post", "/portal/models/tiny/versions/new"),
    ("get", "/portal/models/tiny/versions/{live}"),
    ("get", "/portal/models/tiny/versions/{draft}"),
    ("post", "/portal/models/tiny/versions/{live}/revoke-call"),
]


@pytest.mark.parametrize("method, path", OWNED_PAGES)
def test_another_vendor_gets_404_on_every_owned_page(two_vendors, method, path):
    owner, other, version, draft = two_vendors
    url = path.format(live=version.pk, draft=draft.pk)
    assert getattr(logged_in(other), method)(url).status_code == 404
    assert getattr(logged_in(owner), method)(url).status_code in (200, 302, 400, 409)


def test_another_vendor_cannot_touch_the_draft_through_the_api(two_vendors):
    owner, other, version, draft = two_vendors
    client = Client(HTTP_AUTHORIZATION=f"Bearer {other.token}")
    assert client.get(f"/api/v1/vendor/models/tiny/versions/{draft.pk}").status_code == 404
    assert client.post(f"/api/v1/vendor/models/tiny/versions/{draft.pk}/finalize").status_code == 404
    assert client.put(f"/api/v1/vendor/models/tiny/versions/{draft.pk}/files/x.gguf", b"GGUF", content_type="application/octet-stream").status_code == 404


def test_portal_pages_need_a_login(two_vendors):
    response = Client().get("/portal/models/tiny")
    assert response.status_code == 302 and response["Location"].startswith("/portal/login")


def test_forms_refuse_a_post_without_the_csrf_token(two_vendors):
    owner, *_ = two_vendors
    client = logged_in(owner, enforce_csrf=True)
    assert client.post("/portal/models/tiny/edit", {"name": "x"}).status_code == 403
    assert client.post("/portal/models/tiny/terms-call", {"price_eth": "1"}).status_code == 403
    assert client.post("/api/v1/auth/nonce").status_code == 403  # session-authenticated API calls too
    page = client.get("/portal/models/tiny/edit")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    saved = client.post("/portal/models/tiny/edit", {"name": "Renamed", "description": "", "card": "", "csrfmiddlewaretoken": token})
    assert saved.status_code == 302 and Model.objects.get(slug="tiny").name == "Renamed"


def test_pages_send_a_csp_without_inline_scripts(two_vendors):
    owner, *_ = two_vendors
    client = logged_in(owner)
    for url in ("/", "/acme/tiny", "/portal/", "/portal/models/tiny", "/portal/royalties", "/portal/wallet"):
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        inline = re.findall(rb"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", response.content)
        assert not inline, f"{url} has inline script tags: {inline}"


def test_a_model_card_cannot_inject_script(two_vendors):
    owner, *_ = two_vendors
    card = "# Hi\n<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n[click](javascript:alert(3))\n<iframe src=//evil></iframe>"
    html = render_card(card)
    for bad in ("<script", "onerror", "javascript:", "<iframe"):
        assert bad not in html
    client = logged_in(owner)
    page = client.get("/portal/models/tiny/edit")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    client.post("/portal/models/tiny/edit", {"name": "t", "description": "", "card": card, "csrfmiddlewaretoken": token})
    public = Client().get("/acme/tiny").content
    assert b"<script>alert(1)" not in public and b"onerror" not in public and b"javascript:alert" not in public
    assert b"<h1>Hi</h1>" in public


def test_card_front_matter_is_read(two_vendors):
    owner, *_ = two_vendors
    client = logged_in(owner)
    page = client.get("/portal/models/tiny/edit")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    card = "---\nlicense: apache-2.0\nbase_model: org/base\ntags: [gguf, edge]\n---\n# Tiny"
    client.post("/portal/models/tiny/edit", {"name": "t", "description": "", "card": card, "csrfmiddlewaretoken": token})
    assert Model.objects.get(slug="tiny").card_data == {"license": "apache-2.0", "base_model": "org/base", "tags": ["gguf", "edge"]}


def test_password_reset_sends_an_email(two_vendors, mailoutbox):
    owner, *_ = two_vendors
    owner.user.email = "owner@example.com"
    owner.user.save()
    response = Client().post("/portal/password-reset", {"email": "owner@example.com"})
    assert response.status_code == 302 and len(mailoutbox) == 1 and "/portal/reset/" in mailoutbox[0].body


def test_revoking_takes_a_live_version_and_a_short_reason_and_gives_the_vendors_wallet_the_call(two_vendors):
    owner, _, version, draft = two_vendors
    client = logged_in(owner)
    refused = client.post(f"/portal/models/tiny/versions/{draft.pk}/revoke-call", {"reason": "leaked"})
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_state"
    for reason in ("", " ", "x" * 33, "é" * 17):  # none, or more than 32 bytes of UTF-8
        refused = client.post(f"/portal/models/tiny/versions/{version.pk}/revoke-call", {"reason": reason})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_input", reason
    call = client.post(f"/portal/models/tiny/versions/{version.pk}/revoke-call", {"reason": " leaked "}).json()
    contract = chain_mod.registry_contract()
    function, args = contract.decode_function_input(call["data"])
    assert call["to"] == contract.address and call["from"] == owner.address and function.fn_name == "revokeVersion"
    assert args["version"] == version.number and args["reason"] == b"leaked".ljust(32, b"\0")
