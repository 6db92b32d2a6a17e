"""Sign-In with Ethereum: nonce single-use, domain, chain id and expiry checked; tokens bound to
the wallet's account, listed by prefix, revoked by their owner; several wallets per account."""

from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from rest_framework.test import APIClient

from hallmark.siwe import sign_message, siwe_message
from marketplace.models import ApiToken, Wallet
from registry.chain import development_keys

pytestmark = pytest.mark.django_db
KEY = development_keys()[4]
ADDRESS = Account.from_key(KEY).address


def sign_in(client, key=KEY, *, domain="testserver", chain_id=31337, nonce=None, issued_at=None, ttl=600):
    if nonce is None:
        nonce = client.post("/api/v1/auth/nonce").json()["nonce"]
    text = siwe_message(domain=domain, address=Account.from_key(key).address, uri="http://testserver/", chain_id=chain_id, nonce=nonce, issued_at=issued_at, ttl_seconds=ttl)
    return client.post("/api/v1/auth/siwe", {"message": text, "signature": sign_message(text, key)}, format="json"), nonce


def test_sign_in_returns_a_token_bound_to_the_wallet(settings):
    client = APIClient()
    nonce_info = client.post("/api/v1/auth/nonce").json()
    assert nonce_info["domain"] == "testserver" and nonce_info["chain_id"] == 31337
    response, _ = sign_in(client)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["wallet"] == ADDRESS and body["token"].startswith("hm_") and body["expires_at"]
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert token.get("/api/v1/auth/wallets").json()[0]["address"] == ADDRESS
    assert not ApiToken.objects.filter(key_hash=body["token"]).exists()  # stored hashed


def test_a_nonce_works_once():
    client = APIClient()
    first, nonce = sign_in(client)
    assert first.status_code == 201
    replay, _ = sign_in(client, nonce=nonce)
    assert replay.status_code == 403 and replay.json()["code"] == "siwe_nonce"


def test_unknown_nonce_wrong_domain_wrong_chain_and_expiry_are_refused():
    client = APIClient()
    assert sign_in(client, nonce="madeupnonce123")[0].json()["code"] == "siwe_nonce"
    assert sign_in(client, domain="evil.example")[0].json()["code"] == "siwe_domain"
    assert sign_in(client, chain_id=1)[0].json()["code"] == "siwe_chain"
    old = datetime.now(UTC) - timedelta(hours=1)
    assert sign_in(client, issued_at=old, ttl=60)[0].json()["code"] == "siwe_expired"


def test_a_signature_by_another_key_is_refused():
    client = APIClient()
    nonce = client.post("/api/v1/auth/nonce").json()["nonce"]
    text = siwe_message(domain="testserver", address=ADDRESS, uri="http://testserver/", chain_id=31337, nonce=nonce)
    forged = sign_message(text, development_keys()[5])
    response = client.post("/api/v1/auth/siwe", {"message": text, "signature": forged}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "invalid_signature"
    assert not Wallet.objects.exists()


def test_a_signed_in_user_links_a_second_wallet_and_tokens_are_managed():
    client = APIClient()
    token = sign_in(client)[0].json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    second = sign_in(client, key=development_keys()[5])[0].json()
    assert set(second["wallets"]) == {ADDRESS, Account.from_key(development_keys()[5]).address}

    created = client.post("/api/v1/auth/tokens", {"name": "fleet", "expires_in_days": 30}, format="json").json()
    listed = client.get("/api/v1/auth/tokens").json()
    assert {t["prefix"] for t in listed} >= {created["prefix"]} and all("token" not in t for t in listed)
    assert client.delete(f"/api/v1/auth/tokens/{created['prefix']}").status_code == 204
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    assert revoked.get("/api/v1/auth/wallets").json()["code"] == "invalid_token"


def test_a_wallet_linked_elsewhere_cannot_be_taken():
    first = APIClient()
    sign_in(first)
    other = APIClient()
    token = sign_in(other, key=development_keys()[6])[0].json()["token"]
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response, _ = sign_in(other)
    assert response.status_code == 409 and response.json()["code"] == "wallet_taken"


def test_a_username_equal_to_the_wallet_address_does_not_break_its_first_sign_in(django_user_model):
    squatter = django_user_model.objects.create_user(ADDRESS.lower(), password="portal-user")
    response, _ = sign_in(APIClient())
    assert response.status_code == 201, response.json()
    wallet = Wallet.objects.get(address=ADDRESS)
    assert wallet.user != squatter and wallet.user.username.startswith(ADDRESS.lower())
    assert not Wallet.objects.filter(user=squatter).exists()


def test_a_never_expiring_or_too_long_sign_in_token_is_refused_before_the_nonce_is_spent(settings):
    settings.API_TOKEN_MAX_TTL_DAYS = 365
    client = APIClient()
    for days in (0, 366):
        nonce = client.post("/api/v1/auth/nonce").json()["nonce"]
        text = siwe_message(domain="testserver", address=ADDRESS, uri="http://testserver/", chain_id=31337, nonce=nonce)
        body = {"message": text, "signature": sign_message(text, KEY), "token_expires_in_days": days}
        refused = client.post("/api/v1/auth/siwe", body, format="json")
        assert refused.status_code == 400 and refused.json()["code"] == "token_ttl_too_long"
        assert not Wallet.objects.exists() and not ApiToken.objects.exists()
        body["token_expires_in_days"] = 365  # the same signed message, nonce unspent
        assert client.post("/api/v1/auth/siwe", body, format="json").status_code == 201
        Wallet.objects.all().delete()
        ApiToken.objects.all().delete()
