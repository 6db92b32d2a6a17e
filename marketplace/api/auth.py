"""Identity API: Sign-In with Ethereum, API tokens, linked wallets (/api/v1/auth/...)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..errors import NotFound
from ..models import ApiToken, Wallet


def _domain(request) -> str:
    return settings.SIWE_DOMAIN or request.get_host()


def _bearer(request) -> ApiToken | None:
    """The API token that authenticated `request` (None for a session): what it creates may not outlive it."""
    return request.auth if isinstance(request.auth, ApiToken) else None


def token_data(token: ApiToken) -> dict:
    return {
        "prefix": token.prefix,
        "name": token.name,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "revoked": token.revoked_at is not None,
        "created_by": token.created_by.prefix if token.created_by_id else None,  # revoked with that one
    }


class NonceView(APIView):
    """`POST`: a single-use nonce, and what the EIP-4361 message must say."""

    def post(self, request):
        nonce = services.siwe_nonce_create()
        return Response(
            {
                "nonce": nonce.nonce,
                "expires_at": nonce.expires_at,
                "domain": _domain(request),
                "uri": request.build_absolute_uri("/"),
                "chain_id": settings.CHAIN_ID,
                "version": "1",
            },
            status=status.HTTP_201_CREATED,
        )


class SiweInput(serializers.Serializer):
    message = serializers.CharField(max_length=4000)
    signature = serializers.RegexField(r"^0x[0-9a-fA-F]{130}$")
    token_name = serializers.CharField(max_length=100, required=False, default="sign-in")
    token_expires_in_days = serializers.IntegerField(
        min_value=0, max_value=100_000, required=False,
        help_text="default API_TOKEN_TTL_DAYS; 0 asks for a token that never expires (refused past API_TOKEN_MAX_TTL_DAYS)",
    )
    issue_token = serializers.BooleanField(default=True, required=False, help_text="false: only link the wallet")


class SiweView(APIView):
    """`POST {message, signature}`: verify a signed EIP-4361 message; returns a new API token
    bound to that wallet's account. Signed in already? The wallet is linked to your account."""

    def post(self, request):
        data = SiweInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        current = request.user if request.user.is_authenticated else None
        if values.get("issue_token", True):  # a lifetime that will be refused spends no nonce
            services.api_token_expiry(expires_in_days=values.get("token_expires_in_days"), created_by=_bearer(request))
        user, wallet = services.siwe_sign_in(
            message=values["message"], signature=values["signature"], domain=_domain(request), user=current
        )
        wallets = list(Wallet.objects.filter(user=user).values_list("address", flat=True))
        if not values.get("issue_token", True):
            return Response({"wallet": wallet.address, "wallets": wallets}, status=status.HTTP_201_CREATED)
        token, plaintext = services.api_token_create(
            user=user, name=values["token_name"], expires_in_days=values.get("token_expires_in_days"), created_by=_bearer(request),
        )
        return Response(
            {
                "token": plaintext,
                **token_data(token),
                "wallet": wallet.address,
                "wallets": wallets,
            },
            status=status.HTTP_201_CREATED,
        )


class TokenCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="")
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=100_000, required=False, help_text="default API_TOKEN_TTL_DAYS; at most API_TOKEN_MAX_TTL_DAYS"
    )


class TokensView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request):
        tokens = ApiToken.objects.filter(user=request.user).select_related("created_by").order_by("-created_at")
        return Response([token_data(t) for t in tokens])

    def post(self, request):
        data = TokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, plaintext = services.api_token_create(
            user=request.user, name=data.validated_data["name"], expires_in_days=data.validated_data.get("expires_in_days"),
            created_by=_bearer(request),
        )
        return Response({"token": plaintext, **token_data(token)}, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def delete(self, request, prefix):
        token = ApiToken.objects.filter(user=request.user, prefix=prefix).first()
        if token is None:
            raise NotFound(f"you have no token {prefix}…", code="token_not_found")
        services.api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WalletsView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request):
        return Response([{"address": w.address, "linked_at": w.created_at} for w in Wallet.objects.filter(user=request.user)])


class ChecksumView(APIView):
    """`GET /api/v1/auth/checksum/<address>`: the EIP-55 form of an address (browsers lack keccak)."""

    def get(self, request, address):
        from eth_utils import is_address, to_checksum_address

        from ..errors import InvalidInput

        if not is_address(address):
            raise InvalidInput(f"{address!r} is not an Ethereum address", code="invalid_address")
        return Response({"address": to_checksum_address(address)})
