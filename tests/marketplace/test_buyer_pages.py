"""The buyer's pages: Licences (what each wallet holds, renewals due, history, from the same
selectors as GET /api/v1/royalties/licenses), Tokens (create once-shown, lifetime bound, revoke)
and the lineage on the model page, whose shares follow the contract's cascade to the wei."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from marketplace.models import ApiToken, Model
from marketplace.presenters import model_lineage_tree
from registry.indexer import indexer_run
from royalties.models import License
from royalties.rules import LineageNode, royalty_split
from tests.conftest import publish, purchase

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 9"


def logged_in(party, enforce_csrf=False) -> Client:
    party.user.set_password(PASSWORD)
    party.user.save()
    client = Client(enforce_csrf_checks=enforce_csrf)
    assert client.login(username=party.user.username, password=PASSWORD)
    return client


def csrf_of(response) -> str:
    return re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.content).group(1).decode()


@pytest.fixture
def family(chain, settings, vendor, live_version, make_party, gguf_file):
    """acme/tiny (root) <- remix/chat (25% up, 30-day licence) <- deep/mini (10% up); a buyer
    holding tiny (perpetual) and chat (timed), all indexed."""
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    remixer = make_party("remixer", chain.keys[6], vendor_slug="remix")
    chat = publish(remixer, "chat", {"chat.gguf": gguf_file.read_bytes()}, price=10**16, duration=30 * 86400,
                   parent=live_version.model, bps=2500)
    deep = make_party("deep", chain.keys[7], vendor_slug="deep")
    mini = publish(deep, "mini", {"mini.gguf": gguf_file.read_bytes()}, price=3 * 10**15 + 7, parent=chat.model, bps=1000)
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    purchase(chain, chat.model.chain_model_id, buyer.key)
    indexer_run()
    return {"root": live_version.model, "chat": chat.model, "mini": mini.model, "buyer": buyer}


@pytest.mark.parametrize("path", ["/portal/licences", "/portal/tokens"])
def test_buyer_pages_need_a_login(path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"].startswith("/portal/login")
    assert Client().post("/portal/tokens/abcd1234/revoke").status_code == 302


def test_licences_page_shows_what_each_wallet_holds_and_the_history_like_the_api(family):
    buyer = family["buyer"]
    client = logged_in(buyer)
    api = client.get("/api/v1/royalties/licenses").json()
    page = client.get("/portal/licences")
    html = page.content.decode()
    assert page.status_code == 200 and buyer.address in html
    assert {h["repo_id"] for h in api["licenses"]} == {"acme/tiny", "remix/chat"}
    for held in api["licenses"]:
        assert held["repo_id"] in html and held["transaction_hash"][:12] in html
    assert "perpetual" in html
    chat_expiry = License.objects.get(model_id=family["chat"].chain_model_id).expires_at
    assert chat_expiry.strftime("%Y-%m-%d %H:%M") in html
    assert "renewal due" in html  # a 30-day licence is inside the 30-day renewal window
    assert 'class="list purchases"' in html and html.count("0.01 ETH") >= 1 and "0.001 ETH" in html
    assert len(api["history"]) == 2 and all(h["transaction_hash"][:12] in html for h in api["history"])
    assert 'href="/portal/licences"' in html and 'href="/portal/tokens"' in html  # the header links, signed in


def test_licences_page_has_an_empty_state_linking_to_the_catalog(chain, make_party):
    newcomer = make_party("newcomer", chain.keys[3])
    html = logged_in(newcomer).get("/portal/licences").content.decode()
    assert "No licences yet" in html and 'href="/">Browse the catalog' in html


def test_licence_not_due_for_renewal_is_not_flagged(family):
    License.objects.filter(model_id=family["chat"].chain_model_id).update(expires_at=timezone.now() + timedelta(days=200))
    html = logged_in(family["buyer"]).get("/portal/licences").content.decode()
    assert "renewal due" not in html and "within 30 days" not in html


def test_token_is_created_through_the_page_shown_once_and_revoked(chain, make_party):
    party = make_party("holder", chain.keys[3])
    client = logged_in(party, enforce_csrf=True)
    page = client.get("/portal/tokens")
    assert page.status_code == 200 and 'name="expires_in_days"' in page.content.decode()
    created = client.post("/portal/tokens", {"name": "laptop", "expires_in_days": "7", "csrfmiddlewaretoken": csrf_of(page)})
    assert created.status_code == 200 and "no-store" in created["Cache-Control"]
    secret = re.search(r'value="(hm_[^"]+)"', created.content.decode()).group(1)
    token = ApiToken.objects.get(user=party.user, name="laptop")
    assert secret.startswith(f"hm_{token.prefix}_") and abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=5)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/auth/tokens").status_code == 200  # the secret works
    again = client.get("/portal/tokens").content.decode()
    assert secret not in again and token.prefix in again and "laptop" in again  # listed, never shown again

    assert client.post(f"/portal/tokens/{token.prefix}/revoke").status_code == 403  # CSRF on revoke too
    revoked = client.post(f"/portal/tokens/{token.prefix}/revoke", {"csrfmiddlewaretoken": csrf_of(page)})
    assert revoked.status_code == 302 and revoked["Location"] == "/portal/tokens"
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/auth/tokens").status_code == 401
    assert "revoked" in client.get("/portal/tokens").content.decode()


def test_token_lifetime_past_the_maximum_shows_the_services_error(chain, settings, make_party):
    settings.API_TOKEN_MAX_TTL_DAYS = 30
    party = make_party("holder", chain.keys[3])
    client = logged_in(party)
    before = ApiToken.objects.filter(user=party.user).count()
    refused = client.post("/portal/tokens", {"name": "forever", "expires_in_days": "31"})
    html = refused.content.decode()
    assert refused.status_code == 400 and "a token may live at most 30 days (API_TOKEN_MAX_TTL_DAYS)" in html
    assert "At most 30 days" in html and "hm_" not in html
    assert ApiToken.objects.filter(user=party.user).count() == before
    assert client.post("/portal/tokens", {"name": "month", "expires_in_days": "30"}).status_code == 200


def test_nobody_revokes_another_users_token(chain, make_party):
    owner, other = make_party("owner", chain.keys[3]), make_party("other", chain.keys[4])
    token = ApiToken.objects.filter(user=owner.user).first()
    assert logged_in(other).post(f"/portal/tokens/{token.prefix}/revoke").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_lineage_shares_follow_the_contracts_cascade_and_sum_to_the_price(family, settings):
    mini, chat, root = family["mini"], family["chat"], family["root"]
    tree = model_lineage_tree(model=mini)
    assert [n.model.repo_id for n in tree["nodes"]] == ["acme/tiny", "remix/chat", "deep/mini"] and tree["nodes"][-1].current
    expected = royalty_split(
        price_wei=mini.price_wei, platform_fee_bps=settings.PLATFORM_FEE_BPS, platform_recipient="p",
        lineage=[LineageNode(m.chain_model_id, m.vendor.address, m.upstream_bps) for m in (mini, chat, root)],
    )
    by_model = {(c.model_id, c.role): c.amount_wei for c in expected}
    remaining = mini.price_wei - by_model[(mini.chain_model_id, "platform")]
    assert tree["nodes"][1].share_wei == remaining * 1000 * 7500 // 10**8  # chat keeps 75% of the 10% that reaches it
    assert tree["nodes"][0].share_wei == remaining * 1000 * 2500 // 10**8  # the root keeps all that reaches it
    assert [n.share_wei for n in tree["nodes"]] == [by_model[(root.chain_model_id, "upstream")], by_model[(chat.chain_model_id, "upstream")],
                                                  by_model[(mini.chain_model_id, "vendor")]]
    assert sum(n.share_wei for n in tree["nodes"]) + tree["platform_fee_wei"] == mini.price_wei
    assert abs(sum(n.share_percent for n in tree["nodes"]) + tree["platform_fee_percent"] - 100) < 0.05


def test_model_page_shows_the_lineage_tree_with_shares_and_live_derivatives(family):
    html = Client().get("/remix/chat").content.decode()
    tree = model_lineage_tree(model=family["chat"])
    assert "Lineage and where your money goes" in html
    assert 'href="/acme/tiny"' in html and 'href="/deep/mini"' in html  # ancestor and derivative
    for node in tree["nodes"]:
        assert f'data-share-wei="{node.share_wei}"' in html and f"{node.share_percent}%" in html
    Model.objects.filter(pk=family["mini"].pk).update(listed=False)
    assert 'href="/deep/mini"' not in Client().get("/remix/chat").content.decode()  # only listed derivatives
    assert model_lineage_tree(model=family["mini"]) is not None
    assert "Lineage and where" in Client().get("/acme/tiny").content.decode()  # the root shows its derivative


def test_a_model_without_lineage_shows_no_lineage_box(live_version):
    assert "Lineage and where" not in Client().get("/acme/tiny").content.decode()
