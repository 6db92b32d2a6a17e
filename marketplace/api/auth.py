"""Identity API: Sign-In with Ethereum, API tokens, linked wallets (/api/v1/auth/...)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from eth_utils import is_address, to_checksum_address
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors, services
from ..errors import InvalidInput, NotFound
from ..models import ApiToken, Wallet
from .serializers import Moment


def _domain(request) -> str:
    return settings.SIWE_DOMAIN or request.get_host()


def _bearer(request) -> ApiToken | None:
    """The API token that authenticated `request` (None for a session): what it creates may not outlive it."""
    return request.auth if isinstance(request.auth, ApiToken) else None


class TokenSerializer(serializers.Serializer):
    """An API token as its owner sees it (never the secret, which is shown once, at creation)."""

    prefix = serializers.CharField()
    name = serializers.CharField()
    created_at = Moment()
    expires_at = Moment(allow_null=True)
    last_used_at = Moment(allow_null=True)
    revoked = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField(help_text="the token that created this one: revoked with it")

    class Meta:
        ref_name = "ApiToken"

    def get_revoked(self, token: ApiToken) -> bool:
        return token.revoked_at is not None

    def get_created_by(self, token: ApiToken) -> str | None:
        return token.created_by.prefix if token.created_by_id else None


class NewTokenSerializer(TokenSerializer):
    """A token just created: the secret, once."""

    token = serializers.CharField(source="plaintext", help_text="the secret: shown only now")

    class Meta:
        ref_name = "NewApiToken"

    def get_fields(self):
        fields = super().get_fields()
        return {"token": fields.pop("token"), **fields}  # the secret first, as it always was


def new_token_data(token: ApiToken, plaintext: str) -> dict:
    token.plaintext = plaintext
    return NewTokenSerializer(token).data


class NonceView(APIView):
    """`POST`: a single-use nonce, and what the EIP-4361 message must say."""

    class OutputSerializer(serializers.Serializer):
        nonce = serializers.CharField()
        expires_at = Moment()
        domain = serializers.CharField()
        uri = serializers.CharField()
        chain_id = serializers.IntegerField()
        version = serializers.CharField()

    @extend_schema(request=None, responses={201: OutputSerializer})
    def post(self, request):
        nonce = services.siwe_nonce_create()
        answer = {
            "nonce": nonce.nonce,
            "expires_at": nonce.expires_at,
            "domain": _domain(request),
            "uri": request.build_absolute_uri("/"),
            "chain_id": settings.CHAIN_ID,
            "version": "1",
        }
        return Response(self.OutputSerializer(answer).data, status=status.HTTP_201_CREATED)


class SiweView(APIView):
    """`POST {message, signature}`: verify a signed EIP-4361 message; returns a new API token
    bound to that wallet's account. Signed in already? The wallet is linked to your account."""

    error_statuses = (403, 409)  # siwe_domain, siwe_chain, siwe_nonce, siwe_expired; wallet_taken

    class InputSerializer(serializers.Serializer):
        message = serializers.CharField(max_length=4000)
        signature = serializers.RegexField(r"^0x[0-9a-fA-F]{130}$")
        token_name = serializers.CharField(max_length=100, required=False, default="sign-in")
        token_expires_in_days = serializers.IntegerField(
            min_value=0, max_value=100_000, required=False,
            help_text="default API_TOKEN_TTL_DAYS; 0 asks for a token that never expires (refused past API_TOKEN_MAX_TTL_DAYS)",
        )
        issue_token = serializers.BooleanField(default=True, required=False, help_text="false: only link the wallet")

    class OutputSerializer(serializers.Serializer):
        """The new token's fields (`token`, `prefix`, ... as `POST /auth/tokens` answers), unless
        `issue_token` was false, then the wallet's."""

        token = serializers.CharField(required=False)
        prefix = serializers.CharField(required=False)
        name = serializers.CharField(required=False)
        created_at = Moment(required=False)
        expires_at = Moment(required=False, allow_null=True)
        last_used_at = Moment(required=False, allow_null=True)
        revoked = serializers.BooleanField(required=False)
        created_by = serializers.CharField(required=False, allow_null=True)
        wallet = serializers.CharField(help_text="the wallet the message was signed with")
        wallets = serializers.ListField(child=serializers.CharField(), help_text="every wallet of the account")

    @extend_schema(responses={201: OutputSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        current = request.user if request.user.is_authenticated else None
        if values.get("issue_token", True):  # a lifetime that will be refused spends no nonce
            services.api_token_expiry(expires_in_days=values.get("token_expires_in_days"), created_by=_bearer(request))
        user, wallet = services.siwe_sign_in(
            message=values["message"], signature=values["signature"], domain=_domain(request), user=current
        )
        wallets = list(selectors.wallet_addresses(user=user))
        if not values.get("issue_token", True):
            return Response({"wallet": wallet.address, "wallets": wallets}, status=status.HTTP_201_CREATED)
        token, plaintext = services.api_token_create(
            user=user, name=values["token_name"], expires_in_days=values.get("token_expires_in_days"), created_by=_bearer(request),
        )
        return Response({**new_token_data(token, plaintext), "wallet": wallet.address, "wallets": wallets}, status=status.HTTP_201_CREATED)


class TokensView(APIView):
    """`GET`: your API tokens; `POST {name, expires_in_days}`: a new one (its secret shown once)."""

    permission_classes = [permissions.IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, default="")
        expires_in_days = serializers.IntegerField(
            min_value=1, max_value=100_000, required=False, help_text="default API_TOKEN_TTL_DAYS; at most API_TOKEN_MAX_TTL_DAYS"
        )

    OutputSerializer = TokenSerializer

    @extend_schema(responses=TokenSerializer(many=True))
    def get(self, request):
        tokens = ApiToken.objects.filter(user=request.user).select_related("created_by").order_by("-created_at")
        return Response(self.OutputSerializer(tokens, many=True).data)

    @extend_schema(responses={201: NewTokenSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, plaintext = services.api_token_create(
            user=request.user, name=data.validated_data["name"], expires_in_days=data.validated_data.get("expires_in_days"),
            created_by=_bearer(request),
        )
        return Response(new_token_data(token, plaintext), status=status.HTTP_201_CREATED)


class TokenView(APIView):
    """`DELETE`: revoke one of your tokens (and the tokens it created)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request, prefix):
        token = ApiToken.objects.filter(user=request.user, prefix=prefix).first()
        if token is None:
            raise NotFound(f"you have no token {prefix}…", code="token_not_found")
        services.api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WalletsView(APIView):
    """`GET`: the wallets linked to your account (each proved by a signed sign-in message)."""

    permission_classes = [permissions.IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        address = serializers.CharField()
        linked_at = Moment(source="created_at")

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(Wallet.objects.filter(user=request.user), many=True).data)


class ChecksumView(APIView):
    """`GET /api/v1/auth/checksum/<address>`: the EIP-55 form of an address (browsers lack keccak)."""

    error_statuses = (400,)  # invalid_address

    class OutputSerializer(serializers.Serializer):
        address = serializers.CharField()

    def get(self, request, address):
        if not is_address(address):
            raise InvalidInput(f"{address!r} is not an Ethereum address", code="invalid_address")
        return Response(self.OutputSerializer({"address": to_checksum_address(address)}).data)
