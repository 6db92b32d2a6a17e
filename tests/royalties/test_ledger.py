"""The royalty ledger: balanced entries from events alone, identical after a rebuild, reconciled
against creditOf; statements and licence lists over the API."""

import csv
import io
import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from registry.chain import hex0x
from registry.indexer import indexer_run
from registry.models import ChainEvent
from royalties.ledger import credit_account, last_balance, ledger_balance, ledger_reconcile
from royalties.models import LedgerEntry, LedgerLine, ReconciliationAlert
from royalties.selectors import format_eth
from tests.conftest import publish, purchase
from tests.registry.kit import Registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(chain, settings, vendor, live_version, make_party, gguf_file):
    """acme/tiny (root, by `vendor`), remix/chat derived from it (30% upstream, another vendor),
    two buyers, an overpayment and a withdrawal, all indexed."""
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    remixer = make_party("remixer", chain.keys[6], vendor_slug="remix")
    derived = publish(remixer, "chat", {"chat.gguf": gguf_file.read_bytes()}, price=10**16, duration=3600, parent=live_version.model, bps=3000)
    alice, bob = make_party("alice", chain.keys[2]), make_party("bob", chain.keys[3])
    purchase(chain, live_version.model.chain_model_id, alice.key)
    purchase(chain, derived.model.chain_model_id, alice.key)
    purchase(chain, derived.model.chain_model_id, bob.key, value=10**16 + 12345)  # overpays
    reg = Registry(chain)
    reg.send(reg.f.withdraw(), remixer.address)
    indexer_run()
    return {"vendor": vendor, "remixer": remixer, "alice": alice, "bob": bob, "root": live_version, "derived": derived, "reg": reg}


def snapshot_ledger():
    return sorted(
        (line.entry.kind, line.entry.tx_hash, line.entry.log_index, line.account, line.role, line.model_id, int(line.amount_wei),
         line.block_number, line.sold_model_id, line.sold_version, line.balance_after_wei)
        for line in LedgerLine.objects.select_related("entry")
    )


def test_each_line_carries_its_accounts_running_balance_in_chain_order(market):
    lines = list(LedgerLine.objects.select_related("entry").order_by("occurred_at", "block_number", "log_index", "pk"))
    running = {}
    for line in lines:
        running[line.account] = running.get(line.account, 0) + line.amount_wei
        assert line.balance_after_wei == running[line.account], line
        assert line.block_number == line.entry.block_number
        assert line.sold_model_id == (line.entry.model_id if line.entry.kind == "purchase" else "")
        assert line.sold_version == (1 if line.entry.kind == "purchase" else None)  # each model has one version
    for party in ("vendor", "remixer", "bob"):
        address = market[party].address
        assert last_balance(credit_account(address)) == ledger_balance(address=address)


def test_the_migration_backfills_what_the_projection_writes(market):
    """Lines written before running balances existed get the same values from the migration."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    from royalties.selectors import statement_build

    written = snapshot_ledger()
    start = datetime.combine(date.today(), datetime.min.time(), tzinfo=UTC)
    addresses = [market["vendor"].address]
    later = statement_build(addresses=addresses, start=start + timedelta(days=1), end=start + timedelta(days=2))
    LedgerLine.objects.update(balance_after_wei=None, block_number=None, sold_model_id="", sold_version=None)
    # without balances, the opening balance is the sum of the lines before the period
    assert statement_build(addresses=addresses, start=start + timedelta(days=1), end=start + timedelta(days=2)).opening_balance_wei \
        == later.opening_balance_wei > 0
    migration = importlib.import_module("royalties.migrations.0004_line_chain_order_and_balances")
    # what the migration's schema editor offers the function (a real one cannot open inside the
    # test's transaction on SQLite)
    editor = SimpleNamespace(connection=connection, execute=lambda sql: connection.cursor().execute(sql))
    migration.backfill(apps, editor)
    assert snapshot_ledger() == written


def test_every_entry_balances_and_balances_equal_credit_of(chain, market):
    assert LedgerEntry.objects.filter(kind="purchase").count() == 3
    assert LedgerEntry.objects.filter(kind="withdrawal").count() == 1
    for entry in LedgerEntry.objects.prefetch_related("lines"):
        assert sum(int(line.amount_wei) for line in entry.lines.all()) == 0, entry
    reg = market["reg"]
    for party in ("vendor", "remixer", "bob"):
        address = market[party].address
        assert ledger_balance(address=address) == reg.f.creditOf(address).call(), party
    platform = chain.account(9).address
    assert ledger_balance(address=platform) == reg.f.creditOf(platform).call() > 0
    overpaid = LedgerLine.objects.get(role="overpayment")
    assert overpaid.address == market["bob"].address and int(overpaid.amount_wei) == 12345
    roles = set(LedgerLine.objects.filter(entry__model_id=market["derived"].model.chain_model_id).values_list("role", flat=True))
    assert {"payer", "platform", "upstream", "vendor", "overpayment"} <= roles


def test_rebuilding_from_events_gives_the_same_ledger(market):
    before = snapshot_ledger()
    LedgerEntry.objects.all().delete()
    call_command("rebuild_ledger", stdout=io.StringIO())
    assert snapshot_ledger() == before and before


def test_a_rebuild_that_dies_midway_leaves_the_old_ledger_whole(market, monkeypatch):
    from royalties import ledger

    before = snapshot_ledger()
    applied = []
    real_apply = ledger.ledger_apply

    def apply_then_die(events, **kwargs):
        if applied:
            raise RuntimeError("killed mid-rebuild")
        applied.append(len(events))
        return real_apply(events, **kwargs)

    monkeypatch.setattr(ledger, "REBUILD_BATCH", 2)  # several batches, never splitting a transaction
    monkeypatch.setattr(ledger, "ledger_apply", apply_then_die)
    with pytest.raises(RuntimeError, match="killed mid-rebuild"):
        call_command("rebuild_ledger", stdout=io.StringIO())
    assert applied and snapshot_ledger() == before and before


def purchase_lines(receipt) -> dict[str, tuple[str, int]]:
    tx_hash = hex0x(receipt["transactionHash"])
    return {line.role: (line.address, int(line.amount_wei)) for line in LedgerLine.objects.filter(entry__tx_hash=tx_hash)}


def test_the_platform_line_comes_from_the_fee_event_even_when_no_fee_history_was_indexed(chain, settings, vendor, live_version, make_party):
    """A mirror started after the deployment (REGISTRY_DEPLOY_BLOCK later than it) never sees the
    PlatformFeeChanged that set the fee; the fee's line is still the platform's, not the vendor's."""
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = Registry(chain).w3.eth.block_number + 1  # after the fee was set
    alice = make_party("alice", chain.keys[2])
    receipt = purchase(chain, live_version.model.chain_model_id, alice.key)
    indexer_run()
    assert not ChainEvent.objects.filter(name="PlatformFeeChanged").exists()
    assert ChainEvent.objects.filter(name="PlatformFeeCredited").count() == 1
    fee = 10**15 * 250 // 10_000
    assert purchase_lines(receipt) == {
        "payer": (alice.address, -(10**15)), "platform": (chain.account(9).address, fee), "vendor": (vendor.address, 10**15 - fee),
    }
    assert ledger_reconcile() == []


def test_a_reorg_takes_the_platform_fee_line_away_with_its_purchase(chain, settings, live_version, make_party):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    alice, bob = make_party("alice", chain.keys[2]), make_party("bob", chain.keys[3])
    kept = purchase(chain, live_version.model.chain_model_id, alice.key)
    removed = purchase(chain, live_version.model.chain_model_id, bob.key)
    indexer_run()
    platform, fee = chain.account(9).address, 10**15 * 250 // 10_000
    assert purchase_lines(removed)["platform"] == (platform, fee) and ledger_balance(address=platform) == 2 * fee

    chain.rpc("anvil_reorg", [1, []])  # bob's purchase leaves the chain
    assert indexer_run().rolled_back_to is not None
    assert purchase_lines(removed) == {} and purchase_lines(kept)["platform"] == (platform, fee)
    assert ledger_balance(address=platform) == Registry(chain).f.creditOf(platform).call() == fee
    assert ledger_reconcile() == []


def test_a_purchase_the_indexer_has_not_seen_is_not_drift(chain, market, make_party):
    carol = make_party("carol", chain.keys[7])
    purchase(chain, market["root"].model.chain_model_id, carol.key)  # not indexed yet
    assert ledger_reconcile() == []
    assert not ReconciliationAlert.objects.exists()


def test_a_wrong_ledger_line_is_drift_with_an_alert_and_a_log_line(chain, market, caplog):
    line = LedgerLine.objects.filter(role="vendor", address=market["vendor"].address).first()
    LedgerLine.objects.filter(pk=line.pk).update(amount_wei=int(line.amount_wei) - 7)
    with caplog.at_level(logging.ERROR, logger="royalties.ledger"):
        [alert] = ledger_reconcile()
    assert alert.payee == market["vendor"].address and alert.drift_wei == 7
    assert alert.block_number == indexer_run().to_block
    assert "royalty ledger drift" in caplog.text and market["vendor"].address in caplog.text
    assert len(ledger_reconcile()) == 1 and ReconciliationAlert.objects.count() == 1  # one alert, not one per run
    call_command("rebuild_ledger", stdout=io.StringIO())
    assert ledger_reconcile() == []
    assert ReconciliationAlert.objects.get().resolved_at is not None


def api(party):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {party.token}")
    return client


def test_vendor_statement_has_balances_totals_and_lines(chain, market):
    today = date.today().isoformat()
    body = api(market["vendor"]).get(f"/api/v1/royalties/statement?start={today}&end={today}").json()
    reg = market["reg"]
    vendor = market["vendor"].address
    assert body["opening_balance_wei"] == "0"
    assert int(body["closing_balance_wei"]) == reg.f.creditOf(vendor).call()
    assert body["closing_balance_eth"] == format_eth(int(body["closing_balance_wei"]))
    [sale] = body["totals"]["sales"]
    assert sale["repo_id"] == "acme/tiny" and sale["version"] == 1 and sale["units"] == 1 and sale["gross"]["wei"] == str(10**15)
    [downstream] = body["totals"]["royalties_from_downstream"]
    assert downstream["downstream_repo_id"] == "remix/chat" and downstream["your_repo_id"] == "acme/tiny"
    # two sales of remix/chat at 0.01 ETH: 97.5% after fee, 30% of it upstream to acme/tiny
    assert int(downstream["amount"]["wei"]) == 2 * (10**16 * 9750 // 10_000 * 3000 // 10_000)
    assert sum(int(line["amount_wei"]) for line in body["lines"]) == int(body["closing_balance_wei"])
    assert all(line["transaction_hash"].startswith("0x") for line in body["lines"])


def test_remixer_statement_counts_units_fees_and_withdrawals(chain, market):
    today = date.today().isoformat()
    body = api(market["remixer"]).get(f"/api/v1/royalties/statement?start={today}&end={today}").json()
    [sale] = body["totals"]["sales"]
    assert sale["repo_id"] == "remix/chat" and sale["units"] == 2 and sale["gross"]["wei"] == str(2 * 10**16)
    assert sale["platform_fees"]["wei"] == str(2 * 10**16 * 250 // 10_000)
    assert body["totals"]["withdrawn"]["wei"] == body["totals"]["earned"]["wei"]
    assert body["closing_balance_wei"] == "0" == str(market["reg"].f.creditOf(market["remixer"].address).call())


def test_statement_periods_and_csv(chain, market):
    client = api(market["vendor"])
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    later = client.get(f"/api/v1/royalties/statement?start={tomorrow}&end={tomorrow}").json()
    assert later["lines"] == [] and later["opening_balance_wei"] == later["closing_balance_wei"] != "0"
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    earlier = client.get(f"/api/v1/royalties/statement?start={yesterday}&end={yesterday}").json()
    assert earlier["closing_balance_wei"] == "0"
    today = date.today().isoformat()
    response = client.get(f"/api/v1/royalties/statement?start={today}&end={today}&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows and all(r["transaction_hash"].startswith("0x") for r in rows)
    assert sum(int(r["amount_wei"]) for r in rows) == int(later["closing_balance_wei"])
    assert client.get(f"/api/v1/royalties/statement?start={today}&end={yesterday}").json()["code"] == "invalid_input"
    assert APIClient().get(f"/api/v1/royalties/statement?start={today}&end={today}").status_code == 401


def test_statement_lines_come_in_pages_and_the_totals_cover_the_whole_period(chain, market):
    today = date.today().isoformat()
    client = api(market["vendor"])
    whole = client.get(f"/api/v1/royalties/statement?start={today}&end={today}").json()
    assert whole["line_count"] == len(whole["lines"]) == 3 and whole["next"] is None and whole["previous"] is None
    pages, url = [], f"/api/v1/royalties/statement?start={today}&end={today}&page_size=2"
    while url:
        body = client.get(url).json()
        assert body["line_count"] == 3 and len(body["lines"]) <= 2
        assert {k: body[k] for k in ("closing_balance_wei", "totals")} == {k: whole[k] for k in ("closing_balance_wei", "totals")}
        pages.append(body["lines"])
        url = body["next"]
    assert [len(p) for p in pages] == [2, 1] and [line for p in pages for line in p] == whole["lines"]
    assert body["previous"].endswith("page=1") or "page=1&" in body["previous"]
    beyond = client.get(f"/api/v1/royalties/statement?start={today}&end={today}&page=9").json()
    assert beyond["lines"] == [] and beyond["line_count"] == 3 and beyond["totals"] == whole["totals"]
    too_big = client.get(f"/api/v1/royalties/statement?start={today}&end={today}&page_size=100000")
    assert too_big.status_code == 400 and too_big.json()["code"] == "invalid_input"


@pytest.mark.parametrize("party", ["vendor", "remixer", "bob"])
def test_statement_totals_summed_in_sql_equal_its_lines_added_up(chain, market, party):
    """statement_build sums the period in SQL; adding up every line it lists gives the same figures."""

    from royalties.selectors import statement_build, statement_lines

    start = datetime.combine(date.today(), datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    addresses = [market[party].address]
    statement = statement_build(addresses=addresses, start=start, end=end, lines_limit=None)
    lines = list(statement_lines(addresses=addresses, start=start, end=end))
    assert lines and statement.lines == lines and statement.line_count == len(lines)
    assert statement.closing_balance_wei == statement.opening_balance_wei + sum(line.amount_wei for line in lines)
    assert statement.earned_wei == sum(line.amount_wei for line in lines if line.amount_wei > 0)
    assert statement.withdrawals_wei == -sum(line.amount_wei for line in lines if line.role == "withdrawn")
    upstream = {}
    for line in lines:
        if line.role == "upstream":
            upstream[(line.sold_model_id, line.model_id)] = upstream.get((line.sold_model_id, line.model_id), 0) + line.amount_wei
    assert statement.royalties_from_downstream == [
        {"downstream_model_id": sold, "your_model_id": yours, "amount_wei": amount} for (sold, yours), amount in sorted(upstream.items())
    ]
    vendor_lines = sum(line.amount_wei for line in lines if line.role == "vendor")
    assert sum(s["net_to_vendor_wei"] for s in statement.sales) == vendor_lines
    assert statement_build(addresses=addresses, start=start, end=end, lines_offset=1, lines_limit=1).lines == lines[1:2]


def test_buyer_sees_licences_renewals_and_history(chain, market):
    body = api(market["alice"]).get("/api/v1/royalties/licenses").json()
    held = {h["repo_id"]: h for h in body["licenses"]}
    assert held["acme/tiny"]["perpetual"] is True and held["acme/tiny"]["transaction_hash"].startswith("0x")
    assert held["remix/chat"]["perpetual"] is False and held["remix/chat"]["renewal_due"] is True  # one hour left
    assert body["renewals_due"] == ["remix/chat"]
    assert len(body["history"]) == 2 and {h["repo_id"] for h in body["history"]} == {"acme/tiny", "remix/chat"}


def test_format_eth_is_exact():
    assert format_eth(0) == "0 ETH"
    assert format_eth(1) == "0.000000000000000001 ETH"
    assert format_eth(12_500_000_000_000_000) == "0.0125 ETH"
    assert format_eth(3 * 10**18) == "3 ETH"
