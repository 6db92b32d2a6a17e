"""API tokens: stored hashed, expired or revoked ones refused with their own codes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace import services
from marketplace.errors import NotAuthenticated
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


