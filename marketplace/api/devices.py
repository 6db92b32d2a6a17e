"""Edge devices API (/api/v1/devices...): challenges, registration by the fleet owner, device
tokens, the device's signed inventory. The rules live in fleet/services.py; these views
translate input and output, and fleet's errors into the API's one error shape.

Who may call what is decided before a view runs (marketplace/authentication.py): a device token
(`hmd_...`) only where `device_token_allowed` is set (here: `/devices/me` and the inventory).
The challenge and token endpoints take no authentication and are limited per client address
(DEVICE_AUTH_RATE_LIMIT)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet import selectors as fleet_selectors
from fleet import services as fleet_services
from fleet.errors import FleetError
from fleet.models import Device, DeviceChallenge, DeviceToken

from .. import selectors
from ..errors import Forbidden, MarketplaceError, NotFound
from .serializers import Moment
from .throttles import ApiThrottle, _PerAccount, client_address


class DeviceAuthThrottle(_PerAccount):
    """The unauthenticated device endpoints, per client address (whoever sends the request)."""

    scope = "device_auth"
    setting = "DEVICE_AUTH_RATE_LIMIT"

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:address:{client_address(request)}"


class DeviceSerializer(serializers.Serializer):
    address = serializers.CharField()
    name = serializers.CharField()
    created_at = Moment()
    revoked = serializers.BooleanField()
    revoked_at = Moment(allow_null=True)
    last_seen_at = Moment(allow_null=True)
    inventory_reported_at = Moment(allow_null=True)
    seats = serializers.SerializerMethodField(help_text="the chain model ids this device holds a licence seat of")

    class Meta:
        ref_name = "Device"

    def get_seats(self, device: Device) -> list[str]:
        return [seat.model_id for seat in device.seats.all()]


def _domain(request) -> str:
    return settings.SIWE_DOMAIN or request.get_host()


class _FleetView(APIView):
    def handle_exception(self, exc):
        if isinstance(exc, FleetError):
            exc = MarketplaceError(exc.message, code=exc.code, status=exc.status)
        return super().handle_exception(exc)


class DeviceChallengeView(_FleetView):
    """`POST {address, purpose}`: a single-use message for the device key to sign (EIP-191):
    `register` (its owner then registers it) or `token` (it asks for a token)."""

    permission_classes = [permissions.AllowAny]
    throttle_classes = [ApiThrottle, DeviceAuthThrottle]
    error_statuses = (400,)  # invalid_address, invalid_purpose

    class InputSerializer(serializers.Serializer):
        address = serializers.CharField(max_length=42)
        purpose = serializers.ChoiceField(choices=DeviceChallenge.Purpose.values)

    class OutputSerializer(serializers.Serializer):
        message = serializers.CharField()
        expires_at = Moment()

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        challenge = fleet_services.challenge_create(domain=_domain(request), **data.validated_data)
        return Response(self.OutputSerializer(challenge).data)


class DevicesView(_FleetView):
    """`GET`: your devices (removed ones too); `POST {address, name, message, signature}`: register
    a device, which signed a `register` challenge with its key. The owner's API token or session:
    never a device token."""

    permission_classes = [permissions.IsAuthenticated]
    error_statuses = {"post": (400, 409)}  # invalid_signature, challenge_*; device_exists, device_revoked

    class InputSerializer(serializers.Serializer):
        address = serializers.CharField(max_length=42)
        name = serializers.CharField(max_length=64, trim_whitespace=False)
        message = serializers.CharField(max_length=fleet_services.MAX_MESSAGE_LENGTH, trim_whitespace=False)
        signature = serializers.CharField(max_length=132)

    class OutputSerializer(serializers.Serializer):
        devices = DeviceSerializer(many=True)

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request):
        return Response(self.OutputSerializer({"devices": fleet_selectors.devices_of(owner=request.user)}).data)

    @extend_schema(responses={201: DeviceSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device = fleet_services.device_register(owner=request.user, **data.validated_data)
        return Response(DeviceSerializer(device).data, status=status.HTTP_201_CREATED)


class DeviceView(_FleetView):
    """`DELETE`: remove one of your devices: kept for the record, its seats freed, its tokens
    refused at once by every process."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request, address):
        device = fleet_selectors.device_get_owned(owner=request.user, address=address)
        if device is None:
            raise NotFound(f"you have no device {address[:42]}", code="device_not_found")
        fleet_services.device_revoke(device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeviceTokenView(_FleetView):
    """`POST {address, message, signature}`: a short-lived bearer token (`hmd_...`,
    DEVICE_TOKEN_TTL_SECONDS) for the device that signed a `token` challenge. It downloads what
    the owner's licences allow (one seat per device and model) and reports the inventory: nothing else."""

    permission_classes = [permissions.AllowAny]
    throttle_classes = [ApiThrottle, DeviceAuthThrottle]
    error_statuses = (400, 403, 404)  # invalid_signature, challenge_*; device_revoked; device_not_found

    class InputSerializer(serializers.Serializer):
        address = serializers.CharField(max_length=42)
        message = serializers.CharField(max_length=fleet_services.MAX_MESSAGE_LENGTH, trim_whitespace=False)
        signature = serializers.CharField(max_length=132)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="the secret: shown only now")
        expires_at = Moment()
        device = serializers.CharField(help_text="the device's address")

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, plaintext = fleet_services.device_token_issue(**data.validated_data)
        answer = {"token": plaintext, "expires_at": token.expires_at, "device": token.device.address}
        return Response(self.OutputSerializer(answer).data)


def _device_of(request) -> Device:
    if not isinstance(request.auth, DeviceToken):
        raise Forbidden("this endpoint answers a device, with its own token (POST /api/v1/devices/token)", code="device_token_required")
    return request.auth.device


class DeviceMeView(_FleetView):
    """`GET`: the device whose token asks (a device token only)."""

    device_token_allowed = True
    error_statuses = (403,)  # device_token_required

    OutputSerializer = DeviceSerializer

    def get(self, request):
        device = Device.objects.prefetch_related("seats").get(pk=_device_of(request).pk)
        return Response(DeviceSerializer(device).data)


class DeviceInventoryView(_FleetView):
    """`POST {inventory, signature}`: the device reports what it runs, signed with its key (EIP-191
    over the inventory's canonical JSON); answered with the entries on an outdated or revoked
    version. Only that device's own token; at most 256 KiB and 1000 models."""

    device_token_allowed = True
    error_statuses = (400, 403, 409, 413)  # invalid_inventory, invalid_signature; device_token_required; inventory_stale; inventory_too_large

    class InputSerializer(serializers.Serializer):
        inventory = serializers.JSONField(help_text="`{device, reported_at, models: [{repo_id, model_id, version, root_digest, status, reason}]}`")
        signature = serializers.CharField(help_text="EIP-191 by the device key over the inventory's canonical JSON")

    class OutputSerializer(serializers.Serializer):
        received = serializers.IntegerField(help_text="the number of entries stored")
        outdated = serializers.ListField(child=serializers.DictField(), help_text="entries with a newer version: `latest`")
        revoked = serializers.ListField(child=serializers.DictField(), help_text="entries on a version its vendor revoked")

    def post(self, request, address):
        device = _device_of(request)
        if address.lower() != device.address.lower():
            raise Forbidden("a device reports only its own inventory", code="device_token_not_allowed")
        length = request.META.get("CONTENT_LENGTH") or ""
        if not length.isdigit() or int(length) > fleet_services.MAX_INVENTORY_BYTES:
            raise MarketplaceError(
                f"send the inventory with a Content-Length of at most {fleet_services.MAX_INVENTORY_BYTES} bytes",
                code="inventory_too_large", status=413,
            )
        entries = fleet_services.inventory_record(device=device, body=request.body)
        outdated, revoked = selectors.fleet_entries_flagged(entries)
        return Response(self.OutputSerializer({"received": len(entries), "outdated": outdated, "revoked": revoked}).data)
