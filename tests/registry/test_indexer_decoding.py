"""The indexer reads logs as raw JSON-RPC and decodes them itself (registry.chain.decode_log):
what it stores is, event for event, what web3's `process_log` gave before; a malformed or
hostile log from a node is skipped and holds nothing up; a range is applied in one batch whose
query count does not grow with its events, and writes what one transaction at a time wrote."""

import json
import logging
import random
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from eth_abi import encode
from eth_utils import event_abi_to_log_topic, keccak
from hexbytes import HexBytes

from registry import chain as chain_mod
from registry.chain import MalformedLog, decode_log, hex0x, to_bytes32
from registry.indexer import indexer_run
from registry.models import ChainEvent, IndexerCursor
from royalties.ledger import ledger_apply, ledger_balance, ledger_rebuild
from royalties.models import LedgerEntry, LedgerLine, License
from tests.conftest import purchase, reset_chain_caches

from .kit import Registry

pytestmark = pytest.mark.django_db


def old_jsonable(value):
    """How the indexer turned web3's decoded values into ChainEvent.args before it decoded logs itself."""
    if isinstance(value, (bytes, bytearray, HexBytes)):
        return hex0x(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [old_jsonable(v) for v in value]
    return value


def web3_decoding(raw_log: dict) -> tuple[str, list]:
    """The old path: web3 formats the raw log, `process_log` decodes it; args in their order."""
    contract = chain_mod.registry_contract()
    log = {
        "address": contract.address,
        "topics": [HexBytes(t) for t in raw_log["topics"]],
        "data": HexBytes(raw_log["data"]),
        "blockNumber": int(raw_log.get("blockNumber", "0x1"), 16),
        "blockHash": HexBytes(raw_log.get("blockHash", "0x" + "00" * 32)),
        "transactionHash": HexBytes(raw_log.get("transactionHash", "0x" + "00" * 32)),
        "transactionIndex": 0,
        "logIndex": int(raw_log.get("logIndex", "0x0"), 16),
    }
    name = chain_mod.event_shapes()[bytes(HexBytes(raw_log["topics"][0]))].name
    decoded = getattr(contract.events, name)().process_log(log)
    return name, [(k, old_jsonable(v)) for k, v in decoded["args"].items()]


def new_decoding(raw_log: dict) -> tuple[str, list]:
    name, args = decode_log(raw_log["topics"], raw_log["data"])
    return name, list(args.items())


def random_value(kind: str, rng: random.Random):
    if kind == "address":
        return "0x" + rng.randbytes(20).hex()
    if kind == "bool":
        return rng.random() < 0.5
    if kind.startswith("uint"):
        bits = int(kind[4:] or 256)
        return rng.choice([0, 1, (1 << bits) - 1, rng.getrandbits(bits)])
    if kind.startswith("bytes") and kind != "bytes":
        return rng.randbytes(int(kind[5:]))
    raise AssertionError(f"the registry's events gained a type this test does not make: {kind}")


def synthetic_log(event: dict, rng: random.Random) -> dict:
    indexed = [i for i in event["inputs"] if i["indexed"]]
    data = [i for i in event["inputs"] if not i["indexed"]]
    topics = ["0x" + bytes(event_abi_to_log_topic(event)).hex()]
    topics += ["0x" + encode([i["type"]], [random_value(i["type"], rng)]).hex() for i in indexed]
    body = encode([i["type"] for i in data], [random_value(i["type"], rng) for i in data])
    return {"topics": topics, "data": "0x" + body.hex()}


def registry_events() -> list[dict]:
    return [item for item in chain_mod.load_artifact()["abi"] if item["type"] == "event"]


# ------------------------------------------------------------------------------ decoding


def test_every_event_of_the_abi_decodes_as_web3_decoded_it(chain):
    rng = random.Random(20)
    for event in registry_events():
        for _ in range(25):
            log = synthetic_log(event, rng)
            assert new_decoding(log) == web3_decoding(log), event["name"]


def test_every_event_the_contract_emits_is_stored_as_web3_decoded_it(chain, settings):
    """Each kind of event the registry emits, made on the real chain, then indexed."""
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    reg = Registry(chain)
    owner, vendor, buyer, operator, heir = (reg.addr(i) for i in (0, 1, 2, 3, 4))
    model_id = reg.create(vendor, "decoded", price=10**15, duration=3600)
    reg.publish(vendor, model_id)
    reg.send(reg.f.setTerms(model_id, 10**15, 3600, True), vendor)
    reg.buy(buyer, model_id, licensee=reg.addr(5), value=10**15 + 7)  # purchase, fee, royalty, overpayment
    reg.send(reg.f.purchaseLicenseSeats(model_id, reg.addr(6), 3, 3 * 10**15, 0), buyer, 3 * 10**15)
    reg.send(reg.f.revokeVersion(model_id, 1, keccak(text="broken")), vendor)
    reg.send(reg.f.withdraw(), vendor)
    reg.send(reg.f.setPlatformFee(300, heir), owner)
    reg.send(reg.f.setReceiptOperator(operator, True), owner)
    reg.send(reg.f.anchorReceipts(keccak(text="root"), 3), operator)
    reg.send(reg.f.transferOwnership(heir), owner)
    reg.send(reg.f.acceptOwnership(), heir)

    raw = chain_mod.rpc_call("eth_getLogs", [{"address": reg.c.address, "fromBlock": hex(chain.deploy_block), "toBlock": "latest"}])
    expected = {(log["transactionHash"], int(log["logIndex"], 16)): web3_decoding(log) for log in raw}
    for log in raw:
        assert new_decoding(log) == expected[(log["transactionHash"], int(log["logIndex"], 16))]
    emitted = {name for name, _ in expected.values()}
    never = {"EIP712DomainChanged"}  # the domain is fixed at deployment (covered by the synthetic test)
    assert emitted == {e["name"] for e in registry_events()} - never

    indexer_run()
    stored = {(e.tx_hash, e.log_index): (e.name, e.args) for e in ChainEvent.objects.all()}
    assert stored == {key: (name, dict(args)) for key, (name, args) in expected.items()}  # (jsonb keeps no key order)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda log: {**log, "topics": log["topics"][:-1]}, id="a-topic-missing"),
        pytest.param(lambda log: {**log, "topics": [*log["topics"], "0x" + "00" * 32]}, id="a-topic-too-many"),
        pytest.param(lambda log: {**log, "topics": [*log["topics"][:-1], "0x1234"]}, id="a-short-topic"),
        pytest.param(lambda log: {**log, "data": log["data"][:-2]}, id="short-data"),
        pytest.param(lambda log: {**log, "data": "0x"}, id="no-data"),
        pytest.param(lambda log: {**log, "data": "0xnothex"}, id="data-not-hex"),
        pytest.param(lambda log: {**log, "topics": [log["topics"][0], 7, *log["topics"][2:]]}, id="a-topic-not-text"),
        pytest.param(lambda log: {**log, "topics": [*log["topics"][:2], "0x" + "ff" * 32, log["topics"][3]]},
                     id="address-with-dirty-padding"),  # the licensee
    ],
)
def test_a_malformed_log_is_refused_by_both_decoders(chain, mutate):
    event = next(e for e in registry_events() if e["name"] == "LicensePurchased")
    log = mutate(synthetic_log(event, random.Random(1)))
    with pytest.raises(MalformedLog):
        decode_log(log["topics"], log["data"])
    with pytest.raises(Exception):  # noqa: B017, PT011 - web3 refused it too, with an error of its own
        web3_decoding(log)


def test_a_bool_that_is_neither_zero_nor_one_is_malformed(chain):
    event = next(e for e in registry_events() if e["name"] == "TermsChanged")
    log = synthetic_log(event, random.Random(2))
    log["data"] = log["data"][:-1] + "2"  # `listed`, the last word
    with pytest.raises(MalformedLog):
        decode_log(log["topics"], log["data"])


def test_an_unknown_or_missing_topic0_is_no_registry_event(chain):
    assert decode_log(["0x" + "ab" * 32], "0x") is None
    assert decode_log([], "0x" + "00" * 32) is None  # an anonymous event


# ------------------------------------------------------------------------------ a hostile node


class HostileNode:
    """A JSON-RPC proxy in front of anvil that adds malformed logs to every eth_getLogs answer."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.served = 0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = urllib.request.Request(node.upstream, json.dumps(body).encode(), {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    reply = json.load(response)
                calls, replies = (body, reply) if isinstance(body, list) else ([body], [reply])
                for call, answer in zip(calls, replies, strict=True):
                    if call["method"] == "eth_getLogs" and answer.get("result"):
                        answer["result"] = node.poison(answer["result"])
                out = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def poison(self, logs: list) -> list:
        self.served += 1
        real = next((log for log in logs if len(log["data"]) > 2), logs[0])  # one with data to cut

        def fake(index: int, **changes) -> dict:
            return {**real, "logIndex": hex(1000 + index), **changes}

        return [
            *logs,
            fake(1, topics=real["topics"][:-1]),  # a topic missing
            fake(2, data="0x" + real["data"][2:10]),  # data cut short
            fake(3, topics=["0x" + "ab" * 32, *real["topics"][1:]]),  # no event of the ABI
            fake(4, blockNumber="0xnothex"),
            fake(5, blockHash="0x1234"),
            fake(6, address="0x" + "11" * 20),  # another contract's log
            fake(7, blockNumber=hex(10**9)),  # outside the range asked for
            dict(real),  # the same log twice
            {"removed": False},  # no fields at all
            42,  # not even a log
        ]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def chain_logs(anvil) -> set[tuple[str, int]]:
    logs = chain_mod.rpc_call("eth_getLogs", [{"address": chain_mod.registry_address(), "fromBlock": hex(anvil.deploy_block), "toBlock": "latest"}])
    return {(log["transactionHash"], int(log["logIndex"], 16)) for log in logs}


def mirror() -> set[tuple[str, int]]:
    return set(ChainEvent.objects.values_list("tx_hash", "log_index"))


def test_malformed_logs_from_a_hostile_node_are_skipped_and_hold_nothing_up(chain, settings, live_version, make_party, caplog):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, live_version.model.chain_model_id, buyer.key)
    honest = chain_logs(chain)
    with HostileNode(chain.rpc_url) as node:
        settings.CHAIN_RPC_URL = node.url
        reset_chain_caches()
        try:
            with caplog.at_level(logging.ERROR, logger="registry.indexer"):
                run = indexer_run()
        finally:
            settings.CHAIN_RPC_URL = chain.rpc_url
            reset_chain_caches()
    assert node.served == 1  # one range, one eth_getLogs
    assert mirror() == honest and run.events == len(honest)
    assert IndexerCursor.objects.get().block_number == chain_mod.web3().eth.block_number
    assert License.objects.filter(licensee=buyer.address).exists()
    skipped = [r for r in caplog.records if "malformed registry log skipped" in r.getMessage()]
    assert len(skipped) == 9  # every fake but the one of no ABI event, which is not ours
    later = make_party("later", chain.keys[3])
    purchase(chain, live_version.model.chain_model_id, later.key)
    assert indexer_run().events == 3 and mirror() == chain_logs(chain)


# ------------------------------------------------------------------------------ the bulk path


def test_a_range_costs_the_same_queries_for_thirty_purchases_as_for_three(chain, settings, live_version, make_party):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    reg = Registry(chain)
    buyer = reg.addr(2)
    model_id = to_bytes32(live_version.model.chain_model_id)
    licensees = iter(reg.w3.to_checksum_address(f"0x{0xB0B0000000 + i:040x}") for i in range(100))
    reg.buy(buyer, model_id, licensee=next(licensees))
    indexer_run()  # every account of the purchases below now has lines

    def queries_for(purchases: int) -> int:
        for _ in range(purchases):
            reg.buy(buyer, model_id, licensee=next(licensees))  # a new licence each
        with CaptureQueriesContext(connection) as captured:
            run = indexer_run()
        assert run.events == 3 * purchases
        return len(captured.captured_queries)

    assert queries_for(30) == queries_for(3)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PURCHASE).count() == 34
    contract = chain_mod.registry_contract()
    vendor = live_version.model.vendor.address
    assert ledger_balance(address=vendor) == contract.functions.creditOf(vendor).call()


def lines() -> list[tuple]:
    return list(
        LedgerLine.objects.order_by("pk").values_list(
            "entry__tx_hash", "entry__log_index", "entry__kind", "account", "role", "amount_wei", "balance_after_wei",
            "sold_model_id", "sold_version", "model_id", "log_index", "block_number", "occurred_at",
        )
    )


def test_a_batch_writes_the_ledger_one_transaction_at_a_time_wrote(chain, settings, live_version, make_party):
    settings.CONFIRMATIONS = 1
    settings.REGISTRY_DEPLOY_BLOCK = chain.deploy_block
    reg = Registry(chain)
    vendor = live_version.model.vendor.address
    model_id = to_bytes32(live_version.model.chain_model_id)
    first, second = make_party("first", chain.keys[2]), make_party("second", chain.keys[3])
    purchase(chain, live_version.model.chain_model_id, first.key)
    reg.buy(second.address, model_id, licensee=reg.addr(7), value=10**15 + 5)  # overpaid, for someone else
    reg.send(reg.f.withdraw(), vendor)
    reg.send(reg.f.setTerms(model_id, 2 * 10**15, 0, True), vendor)
    purchase(chain, live_version.model.chain_model_id, second.key)
    reg.send(reg.f.withdraw(), vendor)
    indexer_run()  # one range, one batch
    batched = lines()
    assert len(batched) > 10

    events = list(ChainEvent.objects.order_by("block_number", "log_index"))
    LedgerEntry.objects.all().delete()
    for tx_hash in dict.fromkeys(e.tx_hash for e in events):  # one transaction at a time, in chain order
        ledger_apply([e for e in events if e.tx_hash == tx_hash])
    assert lines() == batched
    assert ledger_apply(events) == LedgerEntry.objects.count()  # applied again: nothing new is written
    assert lines() == batched
    ledger_rebuild()
    assert lines() == batched
    assert ledger_balance(address=vendor) == reg.f.creditOf(vendor).call() == 0
    # the licence mirror holds what the chain holds
    for licence in License.objects.all():
        expiry, seats = reg.f.licenseOf(model_id, licence.licensee).call()
        assert (licence.source, licence.seats, licence.perpetual) == ("event", seats, expiry >= chain_mod.PERPETUAL)


def test_the_word_reader_answers_as_strict_eth_abi_on_fuzzed_words():
    """`chain._decode_words` (the registry's one-word events) against `eth_abi.decode`: the same
    values, or both refuse (dirty padding, a bool of 2, out-of-range values, data cut short)."""
    from eth_abi import decode as abi_decode

    rng = random.Random(7)
    kinds = ["uint8", "uint16", "uint32", "uint64", "uint96", "uint256", "int8", "int256", "address", "bool", "bytes4", "bytes32"]
    words = [bytes(31) + b"\x01", bytes(31) + b"\x02", b"\xff" * 32, bytes(12) + b"\xab" * 20, bytes(32)]
    for _ in range(3000):
        types = tuple(rng.choice(kinds) for _ in range(rng.randint(0, 3)))
        raw = b"".join(rng.choice([*words, rng.randbytes(32)]) for _ in types)
        if rng.random() < 0.2:
            raw = raw[: rng.randint(0, len(raw))]
        if rng.random() < 0.1:
            raw += rng.randbytes(rng.randint(1, 40))
        try:
            expected = ("values", list(abi_decode(types, raw)))
        except Exception:  # noqa: BLE001 - eth_abi refuses with several classes
            expected = ("refused",)
        try:
            got = ("values", chain_mod._decode_words(types, raw))
        except ValueError:
            got = ("refused",)
        assert got == expected, (types, raw.hex())
