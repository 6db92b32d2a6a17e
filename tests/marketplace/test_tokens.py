"""API tokens: stored hashed, expired or revoked ones refused with their own codes; a bounded
lifetime, never longer than the token that created them, revoked with it; rate limits that count
per account, and client addresses taken from X-Forwarded-For only behind a trusted proxy."""

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from marketplace import services
from marketplace.api.throttles import client_address
from marketplace.errors import InvalidInput, NotAuthenticated
from marketplace.models import ApiToken

pytestmark = pytest.mark.django_db


def test_token_is_stored_hashed_and_authenticates(django_user_model):
    user = django_user_model.objects.create_user("u")
    token, plaintext = services.api_token_create(user=user, name="laptop")
    assert plaintext.startswith(f"hm_{token.prefix}_")
    assert plaintext not in token.key_hash and not ApiToken.objects.filter(key_hash=plaintext).exists()
    assert services.api_token_authenticate(plaintext).user == user


def test_revoked_and_expired_tokens_are_refused(django_user_model):
    user = django_user_model.objects.create_user("u")
    token, plaintext = services.api_token_create(user=user)
    services.api_token_revoke(token=token)
    with pytest.raises(NotAuthenticated) as revoked:
        services.api_token_authenticate(plaintext)
    assert revoked.value.code == "invalid_token"
    _, old = services.api_token_create(user=user, expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(NotAuthenticated) as expired:
        services.api_token_authenticate(old)
    assert expired.value.code == "token_expired"




# ------------------------------------------------------------------ lifetime and lineage


def bearer(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_a_token_longer_than_the_maximum_or_never_expiring_is_refused(django_user_model, settings):
    settings.API_TOKEN_MAX_TTL_DAYS = 365
    user = django_user_model.objects.create_user("u")
    client = APIClient()
    client.force_authenticate(user)
    too_long = client.post("/api/v1/auth/tokens", {"expires_in_days": 366}, format="json")
    assert too_long.status_code == 400 and too_long.json()["code"] == "token_ttl_too_long"
    assert "365 days" in too_long.json()["message"] and "API_TOKEN_MAX_TTL_DAYS" in too_long.json()["message"]
    with pytest.raises(InvalidInput) as never:
        services.api_token_create(user=user, expires_in_days=0)
    assert never.value.code == "token_ttl_too_long"
    assert not ApiToken.objects.exists()
    longest = client.post("/api/v1/auth/tokens", {"expires_in_days": 365}, format="json")
    assert longest.status_code == 201


def test_a_token_without_a_lifetime_gets_the_default_not_forever(django_user_model, settings):
    settings.API_TOKEN_TTL_DAYS, settings.API_TOKEN_MAX_TTL_DAYS = 0, 30  # 0: the longest allowed
    user = django_user_model.objects.create_user("u")
    token, _ = services.api_token_create(user=user)
    assert token.expires_at is not None and token.expires_at <= timezone.now() + timedelta(days=30)


def test_a_token_created_with_a_token_never_outlives_it_and_names_it(django_user_model, settings):
    settings.API_TOKEN_TTL_DAYS = 90
    user = django_user_model.objects.create_user("u")
    creator, plaintext = services.api_token_create(user=user, expires_in_days=10)

    default = bearer(plaintext).post("/api/v1/auth/tokens", {"name": "child"}, format="json")
    assert default.status_code == 201, default.json()
    child = ApiToken.objects.get(prefix=default.json()["prefix"])
    assert child.created_by == creator and child.expires_at <= creator.expires_at
    assert default.json()["created_by"] == creator.prefix

    longer = bearer(plaintext).post("/api/v1/auth/tokens", {"expires_in_days": 11}, format="json")
    assert longer.status_code == 400 and longer.json()["code"] == "token_ttl_too_long"
    assert "cannot outlive it" in longer.json()["message"]

    session = APIClient()
    session.force_authenticate(user)  # signed in to the portal, not with a token: only the maximum applies
    assert session.post("/api/v1/auth/tokens", {"expires_in_days": 30}, format="json").status_code == 201


def test_revoking_a_token_revokes_the_tokens_it_created_at_once(django_user_model):
    user = django_user_model.objects.create_user("u")
    root, root_plain = services.api_token_create(user=user, name="root")
    child_plain = bearer(root_plain).post("/api/v1/auth/tokens", {"name": "child"}, format="json").json()["token"]
    grandchild_plain = bearer(child_plain).post("/api/v1/auth/tokens", {"name": "grandchild"}, format="json").json()["token"]
    _, sibling_plain = services.api_token_create(user=user, name="made elsewhere")
    for plaintext in (child_plain, grandchild_plain):
        assert bearer(plaintext).get("/api/v1/auth/wallets").status_code == 200  # now cached as live

    assert bearer(sibling_plain).delete(f"/api/v1/auth/tokens/{root.prefix}").status_code == 204

    for plaintext in (root_plain, child_plain, grandchild_plain):
        refused = bearer(plaintext).get("/api/v1/auth/wallets")
        assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"
    assert bearer(sibling_plain).get("/api/v1/auth/wallets").status_code == 200


# ------------------------------------------------------------------ rate limits per account


def test_two_tokens_of_one_user_share_one_api_rate_limit(django_user_model, settings):
    settings.API_RATE_LIMIT = "2/day"
    user = django_user_model.objects.create_user("u")
    cache.delete(f"throttle:api:user:{user.pk}")
    _, first = services.api_token_create(user=user)
    _, second = services.api_token_create(user=user)
    assert [bearer(first).get("/api/v1/auth/wallets").status_code for _ in range(2)] == [200, 200]
    limited = bearer(second).get("/api/v1/auth/wallets")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    cache.delete(f"throttle:api:user:{user.pk}")


def test_two_tokens_of_one_user_share_one_download_rate_limit(django_user_model, settings):
    settings.DOWNLOAD_RATE_LIMIT = "2/day"
    user = django_user_model.objects.create_user("u")
    key = f"throttle:download:user:{user.pk}:86400:{int(time.time() // 86400)}"
    cache.delete(key)
    _, first = services.api_token_create(user=user)
    _, second = services.api_token_create(user=user)
    # counted before anything is looked up: a repo that does not exist costs the same
    assert [bearer(first).head("/nobody/nothing/resolve/main/x.gguf").status_code for _ in range(2)] == [404, 404]
    limited = bearer(second).get("/nobody/nothing/resolve/main/x.gguf")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited" and int(limited["Retry-After"]) > 0
    cache.delete(key)


def test_a_forged_x_forwarded_for_from_an_untrusted_peer_does_not_change_the_rate_limit_key(settings):
    settings.API_RATE_LIMIT = "2/day"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    peer = "203.0.113.77"
    cache.delete(f"throttle:api:address:{peer}")
    client = APIClient()
    answers = [
        client.get("/api/v1/models", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(3)
    ]
    assert answers == [200, 200, 429]
    cache.delete(f"throttle:api:address:{peer}")


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "client"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a proxy of ours: the header is the client's own words
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),  # our proxy saw 198.51.100.1
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client prepended a forgery
        ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.3", "198.51.100.1"),  # two proxies of ours
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "not-an-ip, 10.0.0.3", "10.0.0.3"),
        ("2001:db8::5", "198.51.100.1", "2001:db8::5"),
    ],
)
def test_client_address_trusts_x_forwarded_for_only_from_configured_proxies(settings, remote_addr, forwarded_for, client):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_address(request) == client
    settings.TRUSTED_PROXIES = []
    assert client_address(request) == remote_addr


@pytest.mark.django_db
def test_a_vendor_cannot_take_the_name_of_a_site_path(django_user_model, anvil):
    from marketplace import services
    from marketplace.errors import InvalidInput
    from tests.conftest import link_wallet

    user = django_user_model.objects.create_user(username="squatter", password=None)
    link_wallet(user, anvil.keys[5])
    with pytest.raises(InvalidInput) as refused:
        services.vendor_register(user=user, slug="models", address=anvil.account(5).address)
    assert refused.value.code == "vendor_name_reserved"
    assert services.vendor_register(user=user, slug="modelsmith", address=anvil.account(5).address).slug == "modelsmith"
