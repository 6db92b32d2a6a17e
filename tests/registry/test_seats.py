"""ModelRegistry licence seats (issue 16): `purchaseLicenseSeats`, the packed licence, the views.

Every test runs against the real contract on anvil, rolled back afterwards."""

import pytest
from eth_utils import keccak

from registry.chain import PERPETUAL, model_on_chain
from royalties.rules import LineageNode, royalty_split

from .kit import Registry
from .test_contract import credit_logs

MAX_SEATS = 10_000
UINT32_MAX = 2**32 - 1


@pytest.fixture
def reg(chain):
    return Registry(chain)


@pytest.fixture
def vendor(reg):
    return reg.addr(1)


def buy_seats(reg, buyer, model_id, seats, *, licensee=None, value=None, max_price=None, min_expires_at=0):
    price = model_on_chain(model_id, contract=reg.c).price_wei * seats
    call = reg.f.purchaseLicenseSeats(model_id, licensee or buyer, seats, price if max_price is None else max_price, min_expires_at)
    return reg.send(call, buyer, price if value is None else value)


def seats_call(reg, model_id, licensee, seats, max_price, min_expires_at=0):
    return reg.f.purchaseLicenseSeats(model_id, licensee, seats, max_price, min_expires_at)


def test_the_seats_purchase_has_its_own_selector_and_the_one_seat_overloads_keep_theirs(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10)
    buyer = reg.addr(3)
    call = seats_call(reg, model_id, buyer, 2, 20)
    assert call._encode_transaction_data()[:10] == "0x" + keccak(text="purchaseLicenseSeats(bytes32,address,uint32,uint256,uint64)")[:4].hex()
    one = reg.f.purchaseLicense(model_id, buyer, 10)
    assert one._encode_transaction_data()[:10] == "0x" + keccak(text="purchaseLicense(bytes32,address,uint256)")[:4].hex()
    assert reg.f.MAX_SEATS_PER_PURCHASE().call() == MAX_SEATS


def test_a_one_seat_purchase_holds_one_seat_and_says_so_in_its_event(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    assert reg.f.licenseOf(model_id, buyer).call() == [0, 0] and reg.f.licenseSeats(model_id, buyer).call() == 0
    receipt = reg.buy(buyer, model_id)
    [event] = reg.events(receipt, "LicensePurchased")
    assert event["price"] == 10 and event["seats"] == 1
    assert reg.f.licenseOf(model_id, buyer).call() == [event["expiresAt"], 1]
    assert reg.f.licenseSeats(model_id, buyer).call() == 1
    assert reg.f.licenseExpiry(model_id, buyer).call() == event["expiresAt"] and reg.f.hasLicense(model_id, buyer).call()


def test_n_seats_cost_the_price_times_n_split_to_the_wei_along_the_lineage(reg, chain):
    fee_recipient = chain.account(9).address
    a, b, c, buyer = reg.addr(1), reg.addr(2), reg.addr(3), reg.addr(4)
    model_a = reg.create(a, "a")
    model_b = reg.create(b, "b", parent=model_a, bps=2000)
    model_c = reg.create(c, "c", price=333_333_333_333_333_337, parent=model_b, bps=3333)
    seats = 7
    total = 333_333_333_333_333_337 * seats
    receipt = buy_seats(reg, buyer, model_c, seats, value=total + 5)
    [event] = reg.events(receipt, "LicensePurchased")
    assert event["price"] == total and event["seats"] == seats and event["expiresAt"] == PERPETUAL
    expected = royalty_split(
        price_wei=total, platform_fee_bps=250, platform_recipient=fee_recipient,
        lineage=[LineageNode(model_c, c, 3333), LineageNode(model_b, b, 2000), LineageNode(model_a, a, 0)],
    )
    logs = credit_logs(reg, receipt)
    assert [(payee, model, amount) for _, payee, model, amount in logs[:-1]] == [
        (credit.payee, credit.model_id, credit.amount_wei) for credit in expected
    ]
    assert logs[-1] == ("OverpaymentCredited", buyer, model_c, 5)
    assert sum(amount for name, _, _, amount in logs if name != "OverpaymentCredited") == total
    assert reg.f.creditOf(buyer).call() == 5
    assert reg.f.licenseSeats(model_c, buyer).call() == seats


def test_n_seats_split_like_one_sale_of_the_total_not_n_sales(reg, chain):
    """Rounding: the 2.5% fee of 3 seats at 30 wei is floor(90 * 0.025) = 2, where three one-seat
    sales would credit 3 x floor(30 * 0.025) = 0."""
    fee_recipient = chain.account(9).address
    model_id = reg.create(reg.addr(1), "tiny", price=30)
    receipt = buy_seats(reg, reg.addr(3), model_id, 3)
    assert credit_logs(reg, receipt) == [
        ("PlatformFeeCredited", fee_recipient, model_id, 2),
        ("RoyaltyCredited", reg.addr(1), model_id, 88),
    ]
    assert credit_logs(reg, reg.buy(reg.addr(4), model_id)) == [("RoyaltyCredited", reg.addr(1), model_id, 30)]


def test_a_held_perpetual_licence_gains_the_seats_but_a_one_seat_purchase_still_refuses_to_charge_twice(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=0)
    buyer = reg.addr(3)
    reg.buy(buyer, model_id)
    reg.reverts("LicenseAlreadyPerpetual", reg.f.purchaseLicense(model_id, buyer, 10), buyer, 10)
    reg.reverts("LicenseAlreadyPerpetual", reg.f.purchaseLicense(model_id, buyer, 10, 0), buyer, 10)
    receipt = buy_seats(reg, buyer, model_id, 4, min_expires_at=PERPETUAL)
    [event] = reg.events(receipt, "LicensePurchased")
    assert (event["price"], event["expiresAt"], event["seats"]) == (40, PERPETUAL, 5)
    receipt = buy_seats(reg, buyer, model_id, 1)  # one more seat goes through the seats purchase
    assert reg.events(receipt, "LicensePurchased")[0]["seats"] == 6
    assert reg.f.licenseOf(model_id, buyer).call() == [PERPETUAL, 6]
    # each sale split on its own total: the 2.5% fee is 0, 1 and 0 wei
    assert reg.f.creditOf(vendor).call() == 10 + 39 + 10


def test_a_perpetual_licence_cannot_gain_timed_seats(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=0)
    buyer = reg.addr(3)
    buy_seats(reg, buyer, model_id, 2)
    reg.send(reg.f.setTerms(model_id, 10, 1000, True), vendor)  # timed from now on
    reg.reverts("LicenseAlreadyPerpetual", seats_call(reg, model_id, buyer, 3, 30), buyer, 30)
    assert reg.f.licenseOf(model_id, buyer).call() == [PERPETUAL, 2]


def test_perpetual_seats_cannot_overflow_uint32(reg, chain, vendor):
    model_id = reg.create(vendor, "free", price=0, duration=0)
    buyer = reg.addr(3)
    buy_seats(reg, buyer, model_id, 1)
    # the slot holds (expiresAt, seats): set the seats to just below the top, as 429,497 purchases would
    slot = _licence_slot(reg, model_id, buyer)
    packed = (UINT32_MAX - 5) << 64 | PERPETUAL
    chain.rpc("anvil_setStorageAt", [reg.c.address, hex(slot), "0x" + packed.to_bytes(32, "big").hex()])
    assert reg.f.licenseOf(model_id, buyer).call() == [PERPETUAL, UINT32_MAX - 5]
    failed = reg.reverts("InvalidSeatCount", seats_call(reg, model_id, buyer, 6, 0), buyer)
    assert failed.error_args == (6,)
    buy_seats(reg, buyer, model_id, 5)
    assert reg.f.licenseSeats(model_id, buyer).call() == UINT32_MAX


def _licence_slot(reg, model_id: bytes, licensee: str) -> int:
    """The storage slot of `_licenses[modelId][licensee]`: the mapping's base slot is found as the
    one whose derived slot holds the perpetual one-seat licence just bought (no layout guessed)."""
    expected = (1 << 64) | PERPETUAL
    for base in range(32):
        inner = keccak(model_id + base.to_bytes(32, "big"))
        slot = int.from_bytes(keccak(bytes.fromhex(licensee[2:]).rjust(32, b"\0") + inner), "big")
        if int.from_bytes(reg.w3.eth.get_storage_at(reg.c.address, slot), "big") == expected:
            return slot
    raise AssertionError("the licence's slot was not found")


def test_a_timed_licence_renewed_with_at_least_the_seats_held_extends_from_its_expiry(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    receipt = buy_seats(reg, buyer, model_id, 3)
    first = reg.events(receipt, "LicensePurchased")[0]["expiresAt"]
    receipt = buy_seats(reg, buyer, model_id, 3)  # same seats: the expiry extends from the current one
    assert reg.events(receipt, "LicensePurchased")[0]["expiresAt"] == first + 1000
    receipt = buy_seats(reg, buyer, model_id, 5)  # more seats: all five share the extended expiry
    [event] = reg.events(receipt, "LicensePurchased")
    assert (event["price"], event["expiresAt"], event["seats"]) == (50, first + 2000, 5)
    assert reg.f.licenseOf(model_id, buyer).call() == [first + 2000, 5]


def test_a_renewal_below_the_seats_held_reverts_and_takes_no_money(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    buy_seats(reg, buyer, model_id, 4)
    held = reg.f.licenseOf(model_id, buyer).call()
    credited, balance = reg.f.creditOf(vendor).call(), reg.w3.eth.get_balance(reg.c.address)
    failed = reg.reverts("SeatsBelowHeld", seats_call(reg, model_id, buyer, 3, 30), buyer, 30)
    assert failed.error_args == (4,)
    # the one-seat overloads are a one-seat renewal: refused the same way
    reg.reverts("SeatsBelowHeld", reg.f.purchaseLicense(model_id, buyer, 10), buyer, 10)
    assert reg.f.licenseOf(model_id, buyer).call() == held
    assert reg.f.creditOf(vendor).call() == credited and reg.w3.eth.get_balance(reg.c.address) == balance


def test_an_expired_licence_starts_again_with_any_seat_count(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    buy_seats(reg, buyer, model_id, 8)
    chain.rpc("evm_increaseTime", [5000])
    chain.rpc("evm_mine")
    assert reg.f.licenseSeats(model_id, buyer).call() == 0  # expired: no seats held now
    assert reg.f.licenseOf(model_id, buyer).call()[1] == 8  # the record keeps them
    receipt = reg.buy(buyer, model_id)  # one seat after eight: a new term from now
    now = reg.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert reg.f.licenseOf(model_id, buyer).call() == [now + 1000, 1]


def test_a_timed_licence_turned_perpetual_must_keep_its_seats(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    buy_seats(reg, buyer, model_id, 3)
    reg.send(reg.f.setTerms(model_id, 10, 0, True), vendor)  # perpetual from now on
    reg.reverts("SeatsBelowHeld", seats_call(reg, model_id, buyer, 2, 20), buyer, 20)
    buy_seats(reg, buyer, model_id, 3)
    assert reg.f.licenseOf(model_id, buyer).call() == [PERPETUAL, 3]


def test_the_seat_count_is_bounded(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=1)
    buyer = reg.addr(3)
    for seats in (0, MAX_SEATS + 1, UINT32_MAX):
        failed = reg.reverts("InvalidSeatCount", seats_call(reg, model_id, buyer, seats, 2**64), buyer, MAX_SEATS + 1)
        assert failed.error_args == (seats,)
    receipt = buy_seats(reg, buyer, model_id, MAX_SEATS)
    assert reg.events(receipt, "LicensePurchased")[0]["price"] == MAX_SEATS


def test_max_price_bounds_the_total_and_a_short_payment_reverts(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=100)
    buyer = reg.addr(3)
    failed = reg.reverts("PriceAboveMax", seats_call(reg, model_id, buyer, 3, 299), buyer, 300)
    assert failed.error_args == (300, 299)
    reg.send(reg.f.setTerms(model_id, 150, 0, True), vendor)  # raised in front: 3 x 150 > 300
    failed = reg.reverts("PriceAboveMax", seats_call(reg, model_id, buyer, 3, 300), buyer, 450)
    assert failed.error_args == (450, 300)
    failed = reg.reverts("InsufficientPayment", seats_call(reg, model_id, buyer, 3, 450), buyer, 449)
    assert failed.error_args == (450, 449)
    assert reg.f.licenseOf(model_id, buyer).call() == [0, 0]


def test_overpayment_is_credited_to_the_payer_and_the_licence_goes_to_the_licensee(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=100, duration=1000)
    payer, licensee = reg.addr(3), reg.addr(4)
    receipt = buy_seats(reg, payer, model_id, 2, licensee=licensee, value=260)
    assert reg.events(receipt, "OverpaymentCredited")[0]["amount"] == 60
    assert reg.f.creditOf(payer).call() == 60
    assert reg.f.licenseSeats(model_id, licensee).call() == 2 and reg.f.licenseSeats(model_id, payer).call() == 0


def test_the_minimum_expiry_holds_for_a_seats_purchase(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    now = reg.now()
    failed = reg.reverts("ExpiryBelowMinimum", seats_call(reg, model_id, buyer, 2, 20, now + 5000), buyer, 20)
    assert failed.error_args[1] == now + 5000
    reg.reverts("InvalidLicensee", seats_call(reg, model_id, "0x" + "00" * 20, 2, 20), buyer, 20)
    reg.send(reg.f.setTerms(model_id, 10, 1000, False), vendor)
    reg.reverts("NotListed", seats_call(reg, model_id, buyer, 2, 20), buyer, 20)
