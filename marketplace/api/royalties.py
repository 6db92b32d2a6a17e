"""Royalty statements for vendors and licence lists for buyers (/api/v1/royalties/...).

Amounts are strings of wei digits with a formatted ETH string beside them (`*_eth`)."""

from __future__ import annotations

import csv
from datetime import date, datetime, time, timedelta, timezone

from django.http import HttpResponse
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from royalties.selectors import format_eth, licenses_held, purchase_history, statement_build

from ..models import Model, Wallet


def money(wei: int) -> dict:
    return {"wei": str(int(wei)), "eth": format_eth(int(wei))}


def _repo_ids(model_ids) -> dict[str, str]:
    return {
        m.chain_model_id: m.repo_id
        for m in Model.objects.select_related("vendor").filter(chain_model_id__in={i for i in model_ids if i})
    }


class StatementQuery(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField(help_text="inclusive")
    format = serializers.ChoiceField(choices=["json", "csv"], default="json", required=False)

    def validate(self, data):
        if data["end"] < data["start"]:
            raise serializers.ValidationError("end is before start")
        return data


def _day(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=timezone.utc)


class StatementView(APIView):
    """`GET /api/v1/royalties/statement?start=YYYY-MM-DD&end=YYYY-MM-DD[&format=csv]`: what your
    wallets (the payees) earned and withdrew, with opening and closing balances (UTC days)."""

    permission_classes = [permissions.IsAuthenticated]

    def get(self, request):
        query = StatementQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = _day(query.validated_data["start"]), _day(query.validated_data["end"]) + timedelta(days=1)
        addresses = list(Wallet.objects.filter(user=request.user).values_list("address", flat=True))
        statement = statement_build(addresses=addresses, start=start, end=end)
        repos = _repo_ids(
            {line.entry.model_id for line in statement.lines}
            | {line.model_id for line in statement.lines}
            | {s["model_id"] for s in statement.sales}
        )
        if query.validated_data.get("format") == "csv" or "text/csv" in request.META.get("HTTP_ACCEPT", ""):
            return self._csv(statement, repos, query.validated_data)
        return Response(
            {
                "wallets": statement.addresses,
                "start": query.validated_data["start"],
                "end": query.validated_data["end"],
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
                "lines": [
                    {
                        "occurred_at": line.occurred_at, "role": line.role, "wallet": line.address,
                        "amount_wei": str(int(line.amount_wei)), "amount_eth": format_eth(int(line.amount_wei)),
                        "model_id": line.model_id or None, "repo_id": repos.get(line.model_id),
                        "sold_model_id": line.entry.model_id or None, "sold_repo_id": repos.get(line.entry.model_id),
                        "transaction_hash": line.entry.tx_hash, "block_number": line.entry.block_number,
                    }
                    for line in statement.lines
                ],
            }
        )

    def _csv(self, statement, repos, query) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="hallmark-statement-{query["start"]}-{query["end"]}.csv"'
        writer = csv.writer(response)
        writer.writerow(["occurred_at", "role", "wallet", "amount_wei", "amount_eth", "repo_id", "model_id", "sold_repo_id", "transaction_hash", "block_number"])
        for line in statement.lines:
            writer.writerow([
                line.occurred_at.isoformat(), line.role, line.address, int(line.amount_wei), format_eth(int(line.amount_wei)),
                repos.get(line.model_id, ""), line.model_id, repos.get(line.entry.model_id, ""), line.entry.tx_hash, line.entry.block_number,
            ])
        return response


class LicensesView(APIView):
    """`GET /api/v1/royalties/licenses`: licences your wallets hold (expiry, transaction),
    the ones due for renewal within 30 days, and your purchase history."""

    permission_classes = [permissions.IsAuthenticated]

    def get(self, request):
        addresses = list(Wallet.objects.filter(user=request.user).values_list("address", flat=True))
        held = licenses_held(addresses=addresses)
        history = purchase_history(addresses=addresses)
        repos = _repo_ids({h.model_id for h in held} | {e.model_id for e in history})
        return Response(
            {
                "wallets": addresses,
                "licenses": [
                    {
                        "repo_id": repos.get(h.model_id), "model_id": h.model_id, "licensee": h.licensee,
                        "perpetual": h.perpetual, "expires_at": h.expires_at, "renewal_due": h.renewal_due,
                        "transaction_hash": h.tx_hash, "purchased_at": h.purchased_at,
                    }
                    for h in held
                ],
                "renewals_due": [repos.get(h.model_id) or h.model_id for h in held if h.renewal_due],
                "history": [
                    {
                        "repo_id": repos.get(e.model_id), "model_id": e.model_id, "licensee": e.licensee, "payer": e.payer,
                        "price": money(int(e.price_wei or 0)), "occurred_at": e.occurred_at, "perpetual": e.perpetual,
                        "expires_at": e.expires_at, "transaction_hash": e.tx_hash, "block_number": e.block_number,
                    }
                    for e in history
                ],
            }
        )
