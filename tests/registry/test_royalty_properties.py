"""Property-based: over random lineages, upstream shares, platform fees and prices, one purchase
credits exactly the price (as the API's royalty preview said it would), no payee gets more than its share (the bought model's vendor takes
only the rounding dust on top of its own), the contract agrees with royalties.rules to the wei,
and withdraw moves exactly the credit."""

from collections import Counter
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from registry.chain import hex0x, to_bytes32
from royalties.rules import LineageNode, royalty_split
from royalties.services import royalty_preview

from .kit import ZERO, Registry, fund_and_impersonate

VENDOR_POOL = [f"0x{(0xA11CE000 + i):040x}" for i in range(6)]

lineages = st.lists(
    st.tuples(st.sampled_from(range(len(VENDOR_POOL))), st.integers(0, 10_000)), min_size=1, max_size=9
)


def exact_shares(price: int, fee_bps: int, bps_chain: list[int]) -> list[Fraction]:
    """Exact (rational) share of each lineage level; index 0 is the bought model."""
    remaining = Fraction(price) - Fraction(price * fee_bps // 10_000)
    shares, reaching = [], remaining
    for level, bps in enumerate(bps_chain):
        last = level == len(bps_chain) - 1 or bps == 0
        if last:
            shares.append(reaching)
            break
        shares.append(reaching * (10_000 - bps) / 10_000)
        reaching = reaching * bps / 10_000
    return shares + [Fraction(0)] * (len(bps_chain) - len(shares))


def credits_in_log_order(reg, receipt) -> list[dict]:
    """The purchase's PlatformFeeCredited and RoyaltyCredited events in log order, the fee's
    `recipient` named `payee` like a royalty's."""
    logs = [(e["logIndex"], "PlatformFeeCredited", dict(e["args"])) for e in reg.c.events.PlatformFeeCredited().process_receipt(receipt, errors=DISCARD)]
    logs += [(e["logIndex"], "RoyaltyCredited", dict(e["args"])) for e in reg.c.events.RoyaltyCredited().process_receipt(receipt, errors=DISCARD)]
    return [
        {"event": name, "payee": args.get("recipient", args.get("payee")), "modelId": args["modelId"], "amount": args["amount"]}
        for _, name, args in sorted(logs, key=lambda log: log[0])
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    levels=lineages,
    fee_bps=st.integers(0, 1_000),
    price=st.one_of(st.integers(0, 10**6), st.integers(0, 2**96 - 1)),
    overpay=st.integers(0, 10**6),
)
def test_one_purchase_credits_exactly_the_price_by_the_rule(anvil, levels, fee_bps, price, overpay):
    snapshot = anvil.rpc("evm_snapshot")
    try:
        reg = Registry(anvil)
        owner, buyer = reg.addr(0), reg.addr(4)
        fee_recipient = reg.addr(9)
        reg.send(reg.f.setPlatformFee(fee_bps, fee_recipient), owner)
        vendors = [fund_and_impersonate(anvil, VENDOR_POOL[i]) for i, _ in levels]
        # levels[0] is the root; the last one is bought. The root's bps is 0 by the contract's rule.
        bps_chain_root_first = [0] + [bps for _, bps in levels[1:]]
        parent, nodes = ZERO, []
        for depth, vendor in enumerate(vendors):
            bps = bps_chain_root_first[depth]
            model_price = price if depth == len(vendors) - 1 else 1
            model_id = reg.create(vendor, f"m{depth}", price=model_price, parent=parent, bps=bps)
            nodes.append(LineageNode(hex0x(model_id), vendor, bps))
            parent = model_id
        lineage = list(reversed(nodes))  # bought model first
        anvil.rpc("anvil_setBalance", [buyer, hex(price + overpay + 10**20)])
        before = {p: reg.f.creditOf(p).call() for p in set(vendors) | {fee_recipient, buyer}}
        preview = royalty_preview(model_id=lineage[0].model_id)  # what the API shows a buyer

        receipt = reg.buy(buyer, to_bytes32(lineage[0].model_id), value=price + overpay)

        events = credits_in_log_order(reg, receipt)
        assert sum(e["amount"] for e in events) == price
        expected = royalty_split(price_wei=price, platform_fee_bps=fee_bps, platform_recipient=fee_recipient, lineage=lineage)
        # the platform's share comes as PlatformFeeCredited (first), every other share as RoyaltyCredited
        assert [(e["event"], e["payee"], hex0x(e["modelId"]), e["amount"]) for e in events] == [
            ("PlatformFeeCredited" if c.role == "platform" else "RoyaltyCredited", c.payee, c.model_id, c.amount_wei) for c in expected
        ]
        assert [(c["payee"], c["model_id"], c["amount_wei"]) for c in preview["credits"]] == [
            (e["payee"], hex0x(e["modelId"]), e["amount"]) for e in events
        ]
        per_payee = Counter()
        for e in events:
            per_payee[e["payee"]] += e["amount"]
        per_payee[buyer] += overpay
        for payee, amount in per_payee.items():
            assert reg.f.creditOf(payee).call() - before.get(payee, 0) == amount

        # no payee above its share: ancestors floor theirs, the bought vendor only adds the dust
        shares = exact_shares(price, fee_bps, [n.upstream_bps for n in lineage])
        by_model = {hex0x(e["modelId"]): e["amount"] for e in events if e["payee"] != fee_recipient or e["modelId"] != to_bytes32(lineage[0].model_id)}
        for level, node in enumerate(lineage):
            got = Fraction(by_model.get(node.model_id, 0)) if level else None
            if level:
                assert got <= shares[level]
        dust = sum(shares[1:]) - sum(Fraction(by_model.get(n.model_id, 0)) for n in lineage[1:])
        assert 0 <= dust < len(lineage)

        # withdraw moves exactly the credit of one payee
        payee = vendors[-1]
        credit = reg.f.creditOf(payee).call()
        if credit:
            held = reg.w3.eth.get_balance(reg.c.address)
            reg.send(reg.f.withdraw(), payee)
            assert reg.w3.eth.get_balance(reg.c.address) == held - credit
            assert reg.f.creditOf(payee).call() == 0
    finally:
        anvil.rpc("evm_revert", [snapshot])
