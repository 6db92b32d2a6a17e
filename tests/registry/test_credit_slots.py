"""ModelRegistry's credit storage (issue 20), specified: the platform's fees accrue in the fee slot
and count as its recipient's credit; a vendor's credit slot is opened at its first registration
and stays open after a withdrawal, so no sale pays for creating it.

Every test runs against the real contract on anvil, rolled back afterwards."""

import pytest
from web3 import Web3

from .kit import Registry, fund_and_impersonate

UINT80_MAX = 2**80 - 1
UINT96_MAX = 2**96 - 1


@pytest.fixture
def reg(chain):
    return Registry(chain)


def fresh_buyer(chain, n: int) -> str:
    return fund_and_impersonate(chain, Web3.to_checksum_address(f"0x{0xC0FFEE00 + n:040x}"), 10**30)


def test_fees_move_to_the_old_recipient_when_the_recipient_changes_and_each_withdraws_exactly_its_own(reg, chain):
    owner, old, new = reg.addr(0), chain.account(9).address, reg.addr(8)
    model_id = reg.create(reg.addr(1), "tiny", price=10_000)
    before = reg.f.creditOf(old).call()
    reg.buy(reg.addr(3), model_id)  # 2.5%: 250 wei to the deployment's recipient
    assert reg.f.creditOf(old).call() == before + 250
    reg.send(reg.f.setPlatformFee(1000, new), owner)
    reg.buy(reg.addr(4), model_id)  # 10%: 1,000 wei to the new recipient, none to the old
    assert reg.f.creditOf(old).call() == before + 250
    assert reg.f.creditOf(new).call() == 1000
    for payee, amount in ((old, before + 250), (new, 1000)):
        receipt = reg.send(reg.f.withdraw(), payee)
        assert reg.events(receipt, "Withdrawn") == [{"payee": payee, "amount": amount}]
        assert reg.f.creditOf(payee).call() == 0
        reg.reverts("NothingToWithdraw", reg.f.withdraw(), payee)


def test_fees_past_the_accrual_width_are_credited_whole(reg, chain):
    owner, recipient = reg.addr(0), reg.addr(8)
    reg.send(reg.f.setPlatformFee(1000, recipient), owner)
    dear = reg.create(reg.addr(1), "dear", price=UINT96_MAX)
    cheap = reg.create(reg.addr(1), "cheap", price=10_000)
    buyer = fresh_buyer(chain, 1)
    reg.buy(buyer, cheap)
    receipt = reg.buy(buyer, dear, licensee=reg.addr(3))  # a fee of 2^96 / 10: past 2^80 on its own
    [fee] = reg.events(receipt, "PlatformFeeCredited")
    assert fee["amount"] == UINT96_MAX // 10 > UINT80_MAX
    reg.buy(buyer, cheap, licensee=reg.addr(4))
    expected = 1000 + UINT96_MAX // 10 + 1000
    assert reg.f.creditOf(recipient).call() == expected
    assert reg.f.creditOf(reg.addr(1)).call() == 9000 + (UINT96_MAX - UINT96_MAX // 10) + 9000
    receipt = reg.send(reg.f.withdraw(), recipient)
    assert reg.events(receipt, "Withdrawn") == [{"payee": recipient, "amount": expected}]
    assert reg.f.creditOf(recipient).call() == 0


def test_a_models_first_sale_and_a_sale_after_a_withdrawal_cost_what_a_later_sale_does(reg, chain):
    vendor = reg.addr(1)
    model_id = reg.create(vendor, "tiny", price=10_000)
    first, second = (reg.buy(fresh_buyer(chain, n), model_id)["gasUsed"] for n in (1, 2))
    assert first == second
    reg.send(reg.f.withdraw(), vendor)
    assert reg.f.creditOf(vendor).call() == 0
    after = reg.buy(fresh_buyer(chain, 3), model_id)["gasUsed"]
    assert after == second
    assert reg.f.creditOf(vendor).call() == 9750


def test_an_overpayment_opens_the_payers_credit_exactly(reg, chain):
    model_id = reg.create(reg.addr(1), "tiny", price=100)
    payer = fresh_buyer(chain, 1)
    assert reg.f.creditOf(payer).call() == 0
    reg.send(reg.f.purchaseLicense(model_id, reg.addr(4), 100), payer, 101)
    assert reg.f.creditOf(payer).call() == 1
    receipt = reg.send(reg.f.withdraw(), payer)
    assert reg.events(receipt, "Withdrawn") == [{"payee": payer, "amount": 1}]
    reg.reverts("NothingToWithdraw", reg.f.withdraw(), payer)
