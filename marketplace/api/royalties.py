"""Royalty statements for vendors and licence lists for buyers (/api/v1/royalties/...).

Amounts are strings of wei digits with a formatted ETH string beside them (`*_eth`)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from royalties.selectors import format_eth, licenses_held, purchase_history, statement_build, statement_lines

from .. import selectors
from ..models import Model


def money(wei: int) -> dict:
    return {"wei": str(int(wei)), "eth": format_eth(int(wei))}


def _repo_ids(model_ids) -> dict[str, str]:
    return {
        m.chain_model_id: m.repo_id
        for m in Model.objects.select_related("vendor").filter(chain_model_id__in={i for i in model_ids if i})
    }


LINES_PAGE = 100
MAX_LINES_PAGE = 1000


class StatementQuery(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField(help_text="inclusive")
    format = serializers.ChoiceField(choices=["json", "csv"], default="json", required=False)
    page = serializers.IntegerField(min_value=1, default=1, required=False, help_text="page of `lines` (JSON only)")
    page_size = serializers.IntegerField(
        min_value=1, max_value=MAX_LINES_PAGE, default=LINES_PAGE, required=False, help_text=f"lines per page, at most {MAX_LINES_PAGE}"
    )

    def validate(self, data):
        if data["end"] < data["start"]:
            raise serializers.ValidationError("end is before start")
        return data


def _day(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


class StatementView(APIView):
    """`GET /api/v1/royalties/statement?start=YYYY-MM-DD&end=YYYY-MM-DD[&format=csv]`: what your
    wallets (the payees) earned and withdrew, with opening and closing balances (UTC days)."""

    permission_classes = [permissions.IsAuthenticated]
    FilterSerializer = StatementQuery

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        start, end = _day(params["start"]), _day(params["end"]) + timedelta(days=1)
        addresses = list(selectors.wallet_addresses(user=request.user))
        if params.get("format") == "csv" or "text/csv" in request.META.get("HTTP_ACCEPT", ""):
            return self._csv(statement_lines(addresses=addresses, start=start, end=end), params)
        page, size = params["page"], params["page_size"]
        statement = statement_build(addresses=addresses, start=start, end=end, lines_offset=(page - 1) * size, lines_limit=size)
        repos = _repo_ids(
            {line.sold_model_id for line in statement.lines}
            | {line.model_id for line in statement.lines}
            | {s["model_id"] for s in statement.sales}
            | {m for r in statement.royalties_from_downstream for m in (r["downstream_model_id"], r["your_model_id"])}
        )

        def page_url(number: int) -> str:
            return replace_query_param(request.build_absolute_uri(), "page", number)

        return Response(
            {
                "wallets": statement.addresses,
                "start": params["start"],
                "end": params["end"],
                "opening_balance_wei": str(statement.opening_balance_wei),
                "opening_balance_eth": format_eth(statement.opening_balance_wei),
                "closing_balance_wei": str(statement.closing_balance_wei),
                "closing_balance_eth": format_eth(statement.closing_balance_wei),
                "totals": {
                    "earned": money(statement.earned_wei),
                    "withdrawn": money(statement.withdrawals_wei),
                    "platform_fees_on_your_sales": money(statement.platform_fees_wei),
                    "sales": [
                        {
                            "repo_id": repos.get(s["model_id"]), "model_id": s["model_id"], "version": s["version"],
                            "units": s["units"], "gross": money(s["gross_wei"]), "net_to_you": money(s["net_to_vendor_wei"]),
                            "platform_fees": money(s["platform_fees_wei"]),
                        }
                        for s in statement.sales
                    ],
                    "royalties_from_downstream": [
                        {
                            "downstream_repo_id": repos.get(r["downstream_model_id"]), "downstream_model_id": r["downstream_model_id"],
                            "your_repo_id": repos.get(r["your_model_id"]), "your_model_id": r["your_model_id"],
                            "amount": money(r["amount_wei"]),
                        }
                        for r in statement.royalties_from_downstream
                    ],
                },
                "line_count": statement.line_count,
                "page": page,
                "page_size": size,
                "next": page_url(page + 1) if page * size < statement.line_count else None,
                "previous": page_url(page - 1) if page > 1 else None,
                "lines": [
                    {
                        "occurred_at": line.occurred_at, "role": line.role, "wallet": line.address,
                        "amount_wei": str(line.amount_wei), "amount_eth": format_eth(line.amount_wei),
                        "model_id": line.model_id or None, "repo_id": repos.get(line.model_id),
                        "sold_model_id": line.sold_model_id or None, "sold_repo_id": repos.get(line.sold_model_id),
                        "transaction_hash": line.tx_hash, "block_number": line.block_number,
                    }
                    for line in statement.lines
                ],
            }
        )

    def _csv(self, lines, query) -> StreamingHttpResponse:
        """Every line of the period, streamed: a year of a big vendor's sales never sits in memory."""
        header = ["occurred_at", "role", "wallet", "amount_wei", "amount_eth", "repo_id", "model_id", "sold_repo_id", "transaction_hash", "block_number"]

        def rows():
            writer = csv.writer(_Echo())
            yield writer.writerow(header)
            lines_iter = iter(lines)
            while chunk := list(islice(lines_iter, 1000)):
                repos = _repo_ids({line.model_id for line in chunk} | {line.sold_model_id for line in chunk})
                for line in chunk:
                    yield writer.writerow([
                        line.occurred_at.isoformat(), line.role, line.address, line.amount_wei, format_eth(line.amount_wei),
                        repos.get(line.model_id, ""), line.model_id, repos.get(line.sold_model_id, ""), line.tx_hash, line.block_number,
                    ])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="hallmark-statement-{query["start"]}-{query["end"]}.csv"'
        return response


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a generator."""

    def write(self, value: str) -> str:
        return value


class LicensesView(APIView):
    """`GET /api/v1/royalties/licenses`: licences your wallets hold (expiry, seats, transaction),
    the ones due for renewal within 30 days, and your purchase history (each with the seats the
    licence held after it)."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        addresses = list(selectors.wallet_addresses(user=request.user))
        held = licenses_held(addresses=addresses)
        history = purchase_history(addresses=addresses)
        repos = _repo_ids({h.model_id for h in held} | {e.model_id for e in history})
        return Response(
            {
                "wallets": addresses,
                "licenses": [
                    {
                        "repo_id": repos.get(h.model_id), "model_id": h.model_id, "licensee": h.licensee,
                        "perpetual": h.perpetual, "expires_at": h.expires_at, "seats": h.seats,
                        "renewal_due": h.renewal_due, "transaction_hash": h.tx_hash, "purchased_at": h.purchased_at,
                    }
                    for h in held
                ],
                "renewals_due": [repos.get(h.model_id) or h.model_id for h in held if h.renewal_due],
                "history": [
                    {
                        "repo_id": repos.get(e.model_id), "model_id": e.model_id, "licensee": e.licensee, "payer": e.payer,
                        "price": money(int(e.price_wei or 0)), "occurred_at": e.occurred_at, "perpetual": e.perpetual,
                        "expires_at": e.expires_at, "seats": int((e.memo or {}).get("seats", 1)),
                        "transaction_hash": e.tx_hash, "block_number": e.block_number,
                    }
                    for e in history
                ],
            }
        )
