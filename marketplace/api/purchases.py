"""Purchase API: the unsigned `purchaseLicense` (or `purchaseLicenseSeats`) transaction for the
buyer's wallet, the licence a mined purchase granted, and who would get what from a sale. The API
never holds a buyer's key.

Amounts are strings of wei digits (a JavaScript client never meets an integer it cannot hold)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.chain import PERPETUAL
from royalties.services import (
    MAX_SEATS_PER_PURCHASE,
    PurchaseFailed,
    PurchaseNotFound,
    purchase_confirm,
    purchase_transaction,
    royalty_preview,
)

from .. import selectors
from ..errors import Conflict, InvalidInput
from .serializers import Moment


class WeiField(serializers.CharField):
    """An amount of wei, as a string of digits."""

    def to_representation(self, value) -> str:
        return str(int(value))


class CreditSerializer(serializers.Serializer):
    """One payee's share of a sale, as the contract would credit it."""

    payee = serializers.CharField()
    model_id = serializers.CharField()
    role = serializers.CharField()
    amount_wei = WeiField()


def _unless_perpetual(expiry: int) -> int | None:
    """A unix time, or None for the perpetual sentinel (2^64-1, beyond what JavaScript holds exactly)."""
    return None if expiry >= PERPETUAL else expiry


def _seats(raw: str | None) -> int | None:
    """`?seats=N`: 1 to MAX_SEATS_PER_PURCHASE (the contract's bound), or None when not given."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and 1 <= int(raw) <= MAX_SEATS_PER_PURCHASE):
        raise InvalidInput(f"seats is a whole number from 1 to {MAX_SEATS_PER_PURCHASE}", code="invalid_seats")
    return int(raw)


class PurchaseTransactionView(APIView):
    """`GET /api/v1/models/<vendor>/<model>/purchase?licensee=0x…&seats=N`: the unsigned purchase
    transaction for the buyer's wallet (to, data, value, chain id), the royalty split of the total,
    the expiry and the seats. The API never holds a buyer's key. Without `licensee`, your first
    linked wallet; without `seats`, one seat (and a perpetual licence already held is a conflict:
    say `seats` to add seats to it)."""

    error_statuses = (400, 409, 503)  # invalid_seats; not_listed, already_licensed, seats_below_held; the chain does not answer

    class FilterSerializer(serializers.Serializer):
        licensee = serializers.RegexField(r"^0x[0-9a-fA-F]{40}$", required=False)
        max_price_wei = serializers.RegexField(r"^[0-9]{1,78}$", required=False)
        seats = serializers.CharField(required=False, help_text=f"seats to buy, 1 to {MAX_SEATS_PER_PURCHASE} (default 1)")

    class OutputSerializer(serializers.Serializer):
        class TransactionSerializer(serializers.Serializer):
            to = serializers.CharField()
            data = serializers.CharField()
            value = serializers.CharField(help_text="wei, 0x-hex")
            chainId = serializers.IntegerField()  # noqa: N815 (the wallet's own name for it)

        repo_id = serializers.CharField()
        model_id = serializers.CharField()
        licensee = serializers.CharField()
        transaction = TransactionSerializer()
        price_wei = WeiField(help_text="the total: the model's price times the seats")
        unit_price_wei = WeiField(help_text="the model's price for one seat")
        seats = serializers.IntegerField(help_text="seats bought by this transaction")
        seats_held = serializers.IntegerField(help_text="seats the licensee holds now (0 without a valid licence)")
        seats_after = serializers.IntegerField(help_text="seats the licence holds once this is mined")
        max_price_wei = WeiField()
        expires_at = serializers.IntegerField(allow_null=True, help_text="unix time if mined now; null: perpetual")
        perpetual = serializers.BooleanField()
        min_expires_at = serializers.IntegerField(
            allow_null=True,
            # the transaction reverts (ExpiryBelowMinimum) if the licence would end before this;
            # null for a perpetual licence (the transaction then asks for 2^64-1: perpetual only)
            help_text="the transaction reverts if the licence would end before this; null: perpetual",
        )
        royalties = CreditSerializer(many=True)

    def get(self, request, vendor, model):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        licensee = query.validated_data.get("licensee")
        if not licensee and request.user.is_authenticated:
            licensee = selectors.wallet_addresses(user=request.user).first()
        if not licensee:
            raise InvalidInput("say which wallet gets the licence: ?licensee=0x…", code="licensee_required")
        max_price = query.validated_data.get("max_price_wei")
        seats = _seats(request.query_params.get("seats"))
        try:
            tx = purchase_transaction(
                model_id=found.chain_model_id, licensee=licensee, max_price_wei=int(max_price) if max_price else None,
                seats=seats or 1,
            )
        except LookupError as exc:  # the database says live, the chain has no such model (a reset chain)
            raise Conflict(
                f"{found.repo_id} is not registered on the chain this marketplace uses; nothing can be bought now",
                code="model_not_on_chain",
            ) from exc
        if not tx["listed"]:
            raise Conflict(f"{found.repo_id} is not for sale right now", code="not_listed")
        if tx["already_perpetual"] and (seats is None or not tx["adds_to_perpetual"]):
            more = " (add seats with ?seats=N)" if tx["adds_to_perpetual"] else ""
            raise Conflict(f"{tx['licensee']} already holds a perpetual licence for {found.repo_id}{more}", code="already_licensed")
        if tx["seats_below_held"]:
            raise Conflict(
                f"{tx['licensee']} holds {tx['seats_held']} seats of {found.repo_id}: a renewal must buy at least as many",
                code="seats_below_held",
            )
        preview = royalty_preview(model_id=found.chain_model_id, price_wei=tx["price_wei"])
        answer = {
            "repo_id": found.repo_id,
            "model_id": found.chain_model_id,
            "licensee": tx["licensee"],
            "transaction": {"to": tx["to"], "data": tx["data"], "value": hex(tx["value"]), "chainId": tx["chain_id"]},
            "price_wei": tx["price_wei"],
            "unit_price_wei": tx["unit_price_wei"],
            "seats": tx["seats"],
            "seats_held": tx["seats_held"],
            "seats_after": tx["seats_after"],
            "max_price_wei": tx["max_price_wei"],
            "expires_at": _unless_perpetual(tx["expires_at_if_mined_now"]),
            "perpetual": tx["expires_at_if_mined_now"] >= PERPETUAL,
            "min_expires_at": _unless_perpetual(tx["min_expires_at"]),
            "royalties": preview["credits"],
        }
        return Response(self.OutputSerializer(answer).data)


class PurchaseConfirmView(APIView):
    """`POST /api/v1/purchases {tx_hash}`: once the purchase is mined, the licence it granted
    (202 while pending; 422 if it reverted). Mirrored once CONFIRMATIONS deep (`confirmed: true`);
    a shallower purchase answers `status: "unconfirmed"`, `confirmed: false` and the depth needed:
    the licence is usable now, and mirrored when the purchase is confirmed."""

    error_statuses = (422, 503)  # purchase_reverted; the chain does not answer

    class InputSerializer(serializers.Serializer):
        tx_hash = serializers.RegexField(r"^0x[0-9a-fA-F]{64}$")

    class OutputSerializer(serializers.Serializer):
        class LicenseSerializer(serializers.Serializer):
            model_id = serializers.CharField()
            licensee = serializers.CharField()
            perpetual = serializers.BooleanField()
            expires_at = Moment(allow_null=True)
            block = serializers.IntegerField(source="observed_block", allow_null=True)
            seats = serializers.IntegerField(help_text="seats the licence holds after the purchase")

        status = serializers.SerializerMethodField()
        confirmed = serializers.BooleanField()
        depth = serializers.IntegerField()
        confirmations = serializers.IntegerField()
        licenses = LicenseSerializer(many=True)

        def get_status(self, confirmation) -> str:
            return "confirmed" if confirmation.confirmed else "unconfirmed"

    class PendingSerializer(serializers.Serializer):
        status = serializers.CharField(help_text="pending")
        message = serializers.CharField()

    @extend_schema(responses={200: OutputSerializer, 202: PendingSerializer})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            confirmation = purchase_confirm(tx_hash=data.validated_data["tx_hash"])
        except PurchaseNotFound as exc:
            pending = self.PendingSerializer({"status": "pending", "message": str(exc)}).data
            return Response(pending, status=status.HTTP_202_ACCEPTED)
        except PurchaseFailed as exc:
            raise InvalidInput(str(exc), code=exc.code, status=422) from exc
        return Response(self.OutputSerializer(confirmation).data)


class RoyaltyPreviewView(APIView):
    """`GET /api/v1/models/<vendor>/<model>/royalties?price_wei=`: who would get what from one sale."""

    error_statuses = (400, 503)  # invalid_price; the chain does not answer

    class OutputSerializer(serializers.Serializer):
        repo_id = serializers.CharField()
        price_wei = WeiField()
        platform_fee_bps = serializers.IntegerField()
        credits = CreditSerializer(many=True)

    @extend_schema(parameters=[OpenApiParameter("price_wei", str, description="wei, as a string of digits (default: the price)")])
    def get(self, request, vendor, model):
        found = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
        raw = request.query_params.get("price_wei")
        if raw is not None and not (raw.isascii() and raw.isdigit()):
            raise InvalidInput("price_wei is a whole number of wei", code="invalid_price")
        preview = royalty_preview(model_id=found.chain_model_id, price_wei=int(raw) if raw else None)
        return Response(self.OutputSerializer({"repo_id": found.repo_id, **preview}).data)
