"""ModelRegistry, specified: models, versions, terms, licences, royalties, withdrawals, owner.

Every test runs against the real contract on anvil, rolled back afterwards."""

from fractions import Fraction

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3.logs import DISCARD

from registry import chain as chain_mod
from registry.chain import PERPETUAL, from_hex, hex0x, model_on_chain
from royalties.rules import LineageNode, royalty_split

from .kit import ZERO, Registry, compile_contract, deploy, slug_hash


@pytest.fixture
def reg(chain):
    return Registry(chain)


@pytest.fixture
def vendor(reg):
    return reg.addr(1)


# ------------------------------------------------------------------------------- models


def test_model_id_is_keccak_of_abi_encoded_vendor_and_slug_hash(reg, vendor):
    model_id = reg.create(vendor, "tiny")
    assert model_id == keccak(encode(["address", "bytes32"], [vendor, slug_hash("tiny")]))
    stored = reg.f.models(model_id).call()
    assert stored[0] == vendor and stored[4] is True  # vendor, listed from the start


def test_a_second_create_with_the_same_id_reverts(reg, vendor):
    reg.create(vendor, "tiny")
    reg.reverts("ModelAlreadyExists", reg.f.createModel(slug_hash("tiny"), 1, 0, ZERO, 0), vendor)
    reg.create(reg.addr(2), "tiny")  # another vendor's "tiny" is another model


def test_the_parent_must_exist(reg, vendor):
    reg.reverts("UnknownModel", reg.f.createModel(slug_hash("child"), 1, 0, keccak(text="nope"), 100), vendor)


def test_a_root_model_cannot_pass_royalties_upstream_and_bps_are_capped(reg, vendor):
    reg.reverts("InvalidUpstreamBps", reg.f.createModel(slug_hash("root"), 1, 0, ZERO, 1), vendor)
    parent = reg.create(vendor, "root")
    reg.reverts("InvalidUpstreamBps", reg.f.createModel(slug_hash("child"), 1, 0, parent, 10_001), vendor)


def test_lineage_depth_is_bounded_at_eight(reg, vendor):
    parent = reg.create(vendor, "m0")
    for depth in range(1, 9):
        parent = reg.create(vendor, f"m{depth}", parent=parent, bps=1000)
    assert model_on_chain(parent).depth == 8
    reg.reverts("LineageTooDeep", reg.f.createModel(slug_hash("m9"), 1, 0, parent, 1000), vendor)


def create_model_sig(reg, key, vendor, slug, nonce, deadline):
    from hallmark import eip712

    typed = eip712.typed_data_create_model(
        chain_id=31337, contract=reg.c.address, vendor=vendor, slug=slug, price_wei=5, license_duration=60,
        parent_id=None, upstream_bps=0, nonce=nonce, deadline=deadline,
    )
    return from_hex(eip712.sign_typed_data(typed, key))


def test_create_model_by_sig_registers_for_the_vendor_and_uses_its_nonce_once(reg, chain):
    vendor = reg.addr(1)
    deadline = reg.now() + 3600
    signature = create_model_sig(reg, chain.keys[1], vendor, "gasless", 0, deadline)
    call = reg.f.createModelBySig(slug_hash("gasless"), 5, 60, ZERO, 0, vendor, deadline, signature)
    receipt = reg.send(call, reg.addr(0))  # the relayer pays
    assert reg.events(receipt, "ModelCreated")[0]["vendor"] == vendor
    assert reg.f.nonces(vendor).call() == 1
    reg.reverts("InvalidSigner", call, reg.addr(0))  # replay: the nonce moved on


def test_create_model_by_sig_refuses_expired_and_foreign_signatures(reg, chain):
    vendor = reg.addr(1)
    past = reg.now() - 1
    expired = create_model_sig(reg, chain.keys[1], vendor, "x", 0, past)
    reg.reverts("ExpiredSignature", reg.f.createModelBySig(slug_hash("x"), 5, 60, ZERO, 0, vendor, past, expired), reg.addr(0))
    deadline = reg.now() + 3600
    foreign = create_model_sig(reg, chain.keys[2], vendor, "x", 0, deadline)
    reg.reverts("InvalidSigner", reg.f.createModelBySig(slug_hash("x"), 5, 60, ZERO, 0, vendor, deadline, foreign), reg.addr(0))


# ------------------------------------------------------------------------------- versions


def test_versions_count_from_one_and_record_their_digest(reg, vendor):
    model_id = reg.create(vendor, "tiny")
    assert reg.f.latestVersion(model_id).call() == 0
    assert reg.publish(vendor, model_id, keccak(text="one")) == 1
    receipt = reg.send(reg.f.publishVersion(model_id, keccak(text="two"), keccak(text="m2")), vendor)
    [event] = reg.events(receipt, "VersionPublished")
    assert (event["version"], event["rootDigest"], event["metadataDigest"], event["signer"]) == (2, keccak(text="two"), keccak(text="m2"), vendor)
    assert reg.f.latestVersion(model_id).call() == 2
    assert reg.f.versionDigest(model_id, 1).call() == keccak(text="one")
    assert reg.f.versionDigest(model_id, 3).call() == ZERO


def test_only_the_vendor_publishes_directly_and_a_zero_digest_is_refused(reg, vendor):
    model_id = reg.create(vendor, "tiny")
    reg.reverts("NotModelVendor", reg.f.publishVersion(model_id, keccak(text="x"), ZERO), reg.addr(2))
    reg.reverts("ZeroDigest", reg.f.publishVersion(model_id, ZERO, ZERO), vendor)
    reg.reverts("UnknownModel", reg.f.publishVersion(keccak(text="none"), keccak(text="x"), ZERO), vendor)


@pytest.fixture
def signed(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny")
    root, meta, deadline = keccak(text="root"), keccak(text="meta"), reg.now() + 3600
    return model_id, root, meta, deadline, reg.sign_publish(chain.keys[1], model_id, 1, root, meta, deadline)


def test_publish_by_sig_can_be_relayed_by_anyone(reg, vendor, signed):
    model_id, root, meta, deadline, signature = signed
    receipt = reg.send(reg.f.publishVersionBySig(model_id, 1, root, meta, deadline, signature), reg.addr(7))
    assert reg.events(receipt, "VersionPublished")[0]["signer"] == vendor
    assert reg.f.versionDigest(model_id, 1).call() == root


def test_publish_by_sig_replay_reverts(reg, signed):
    model_id, root, meta, deadline, signature = signed
    call = reg.f.publishVersionBySig(model_id, 1, root, meta, deadline, signature)
    reg.send(call, reg.addr(7))
    reg.reverts("UnexpectedVersion", call, reg.addr(7))


def test_publish_by_sig_refuses_an_expired_deadline(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny")
    deadline = reg.now() + 10
    signature = reg.sign_publish(chain.keys[1], model_id, 1, keccak(text="r"), ZERO, deadline)
    chain.rpc("evm_increaseTime", [60])
    chain.rpc("evm_mine")
    reg.reverts("ExpiredSignature", reg.f.publishVersionBySig(model_id, 1, keccak(text="r"), ZERO, deadline, signature), reg.addr(7))


def test_publish_by_sig_refuses_a_wrong_signer(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny")
    deadline = reg.now() + 3600
    signature = reg.sign_publish(chain.keys[2], model_id, 1, keccak(text="r"), ZERO, deadline)
    reg.reverts("InvalidSigner", reg.f.publishVersionBySig(model_id, 1, keccak(text="r"), ZERO, deadline, signature), reg.addr(7))


def test_publish_by_sig_refuses_a_signature_for_another_chain_or_contract(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny")
    root, deadline = keccak(text="r"), reg.now() + 3600
    other_chain = reg.sign_publish(chain.keys[1], model_id, 1, root, ZERO, deadline, chain_id=1)
    reg.reverts("InvalidSigner", reg.f.publishVersionBySig(model_id, 1, root, ZERO, deadline, other_chain), reg.addr(7))
    other_contract = reg.sign_publish(chain.keys[1], model_id, 1, root, ZERO, deadline, contract="0x" + "11" * 20)
    reg.reverts("InvalidSigner", reg.f.publishVersionBySig(model_id, 1, root, ZERO, deadline, other_contract), reg.addr(7))


def test_publish_by_sig_must_name_the_next_version(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny")
    root, deadline = keccak(text="r"), reg.now() + 3600
    skipping = reg.sign_publish(chain.keys[1], model_id, 2, root, ZERO, deadline)
    reg.reverts("UnexpectedVersion", reg.f.publishVersionBySig(model_id, 2, root, ZERO, deadline, skipping), reg.addr(7))


def test_the_vendor_alone_revokes_a_version_once_with_a_reason(reg, vendor):
    model_id = reg.create(vendor, "tiny")
    reg.publish(vendor, model_id)
    reason = b"compromised".ljust(32, b"\x00")
    reg.reverts("NotModelVendor", reg.f.revokeVersion(model_id, 1, reason), reg.addr(2))
    reg.reverts("UnknownVersion", reg.f.revokeVersion(model_id, 2, reason), vendor)
    receipt = reg.send(reg.f.revokeVersion(model_id, 1, reason), vendor)
    assert reg.events(receipt, "VersionRevoked")[0]["reason"] == reason
    assert reg.f.isRevoked(model_id, 1).call() is True
    reg.reverts("VersionAlreadyRevoked", reg.f.revokeVersion(model_id, 1, reason), vendor)


# ------------------------------------------------------------------------------- terms and licences


def test_terms_are_the_vendors_and_an_unlisted_model_cannot_be_bought(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=100)
    reg.reverts("NotModelVendor", reg.f.setTerms(model_id, 1, 0, True), reg.addr(2))
    receipt = reg.send(reg.f.setTerms(model_id, 200, 60, False), vendor)
    assert reg.events(receipt, "TermsChanged")[0] == {"modelId": model_id, "price": 200, "licenseDuration": 60, "listed": False}
    reg.reverts("NotListed", reg.f.purchaseLicense(model_id, reg.addr(3), 200), reg.addr(3), 200)


def test_a_price_raised_in_front_of_a_purchase_cannot_take_more_than_agreed(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=100)
    buyer = reg.addr(3)
    reg.send(reg.f.setTerms(model_id, 150, 0, True), vendor)  # lands first
    reg.reverts("PriceAboveMax", reg.f.purchaseLicense(model_id, buyer, 100), buyer, 150)
    assert reg.f.licenseExpiry(model_id, buyer).call() == 0


def test_a_short_payment_reverts(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=100)
    reg.reverts("InsufficientPayment", reg.f.purchaseLicense(model_id, reg.addr(3), 100), reg.addr(3), 99)


def test_overpayment_is_credited_back_to_the_payer(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=100)
    payer = reg.addr(3)
    receipt = reg.send(reg.f.purchaseLicense(model_id, reg.addr(4), 100), payer, 130)
    assert reg.events(receipt, "OverpaymentCredited")[0]["amount"] == 30
    assert reg.f.creditOf(payer).call() == 30
    assert reg.f.hasLicense(model_id, reg.addr(4)).call() is True  # the licensee, not the payer


def test_a_licence_for_the_zero_address_is_refused(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=1)
    reg.reverts("InvalidLicensee", reg.f.purchaseLicense(model_id, "0x" + "00" * 20, 1), reg.addr(3), 1)


def test_perpetual_licence_when_duration_is_zero_and_no_paying_twice(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=0)
    buyer = reg.addr(3)
    receipt = reg.buy(buyer, model_id)
    assert reg.events(receipt, "LicensePurchased")[0]["expiresAt"] == PERPETUAL
    assert reg.f.licenseExpiry(model_id, buyer).call() == PERPETUAL and reg.f.hasLicense(model_id, buyer).call()
    reg.reverts("LicenseAlreadyPerpetual", reg.f.purchaseLicense(model_id, buyer, 10), buyer, 10)


def test_renewal_extends_from_the_later_of_now_and_the_current_expiry(reg, chain, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    reg.buy(buyer, model_id)
    first = reg.f.licenseExpiry(model_id, buyer).call()
    reg.buy(buyer, model_id)  # early renewal: no paid time is lost
    assert reg.f.licenseExpiry(model_id, buyer).call() == first + 1000
    chain.rpc("evm_increaseTime", [5000])
    chain.rpc("evm_mine")
    assert reg.f.hasLicense(model_id, buyer).call() is False
    receipt = reg.buy(buyer, model_id)  # lapsed: a new term from now
    now = reg.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert reg.f.licenseExpiry(model_id, buyer).call() == now + 1000


def test_a_purchase_that_would_end_before_the_buyers_minimum_reverts_and_takes_no_money(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    reg.buy(buyer, model_id)
    current = reg.f.licenseExpiry(model_id, buyer).call()  # a renewal ends exactly 1000 s after it
    credited, held = reg.f.creditOf(vendor).call(), reg.w3.eth.get_balance(reg.c.address)
    failed = reg.reverts("ExpiryBelowMinimum", reg.f.purchaseLicense(model_id, buyer, 10, current + 1001), buyer, 10)
    assert failed.error_args == (current + 1000, current + 1001)
    assert reg.f.licenseExpiry(model_id, buyer).call() == current
    assert reg.f.creditOf(vendor).call() == credited and reg.w3.eth.get_balance(reg.c.address) == held
    receipt = reg.buy(buyer, model_id, min_expires_at=current + 1000)  # exactly the minimum is enough
    assert reg.events(receipt, "LicensePurchased")[0]["expiresAt"] == current + 1000


def test_a_perpetual_licence_meets_any_minimum_and_a_perpetual_minimum_refuses_a_timed_one(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=0)
    receipt = reg.buy(reg.addr(3), model_id, min_expires_at=PERPETUAL)
    assert reg.events(receipt, "LicensePurchased")[0]["expiresAt"] == PERPETUAL
    reg.send(reg.f.setTerms(model_id, 10, 60, True), vendor)  # perpetual no more
    buyer = reg.addr(4)
    failed = reg.reverts("ExpiryBelowMinimum", reg.f.purchaseLicense(model_id, buyer, 10, PERPETUAL), buyer, 10)
    assert failed.error_args[1] == PERPETUAL and failed.error_args[0] < PERPETUAL
    assert reg.f.licenseExpiry(model_id, buyer).call() == 0


def test_a_licence_shortened_between_building_and_sending_the_apis_transaction_reverts(reg, vendor, settings):
    from royalties.services import purchase_transaction

    model_id = reg.create(vendor, "tiny", price=10, duration=30 * 86400)
    buyer, other = reg.addr(3), reg.addr(4)
    hex_id = hex0x(model_id)
    offer = purchase_transaction(model_id=hex_id, licensee=buyer)
    assert offer["min_expires_at"] == offer["expires_at_if_mined_now"] - settings.LICENSE_EXPIRY_SLACK_SECONDS
    later = purchase_transaction(model_id=hex_id, licensee=other)
    reg.send(reg.f.setTerms(model_id, 10, 86400, True), vendor)  # front-runs: 30 days -> 1 day, same price
    failed = reg.reverts("ExpiryBelowMinimum", _unsigned(reg, offer), buyer, 10)
    assert failed.error_args[1] == offer["min_expires_at"]
    assert reg.f.licenseExpiry(model_id, buyer).call() == 0 and reg.f.creditOf(vendor).call() == 0
    reg.send(reg.f.setTerms(model_id, 10, 30 * 86400, True), vendor)  # the length the buyer was shown
    receipt = reg.send_unsigned(later, other)
    assert reg.events(receipt, "LicensePurchased")[0]["expiresAt"] >= later["min_expires_at"]


def test_the_three_argument_purchase_keeps_its_selector_and_sets_no_minimum(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10, duration=1000)
    buyer = reg.addr(3)
    call = reg.f.purchaseLicense(model_id, buyer, 10)
    assert call._encode_transaction_data()[:10] == "0x" + keccak(text="purchaseLicense(bytes32,address,uint256)")[:4].hex()
    reg.send(reg.f.setTerms(model_id, 10, 1, True), vendor)  # one second: the buyer stated no minimum
    receipt = reg.send(call, buyer, 10)
    assert reg.events(receipt, "LicensePurchased")[0]["expiresAt"] == reg.now() + 1


def _unsigned(reg, offer):
    """The API's transaction as a contract call object (so `reg.reverts` can send it)."""
    fn, args = reg.c.decode_function_input(offer["data"])
    assert fn.abi_element_identifier == "purchaseLicense(bytes32,address,uint256,uint64)"
    return getattr(reg.f, fn.fn_name)(*args.values())


# ------------------------------------------------------------------------------- royalties


def test_worked_example_fee_then_cascade_sums_to_the_price(reg, chain):
    """docs/contract.md's example: 2.5% fee; C (30% up) derives from B (20% up) derives from A."""
    owner, a, b, c, buyer = reg.addr(0), reg.addr(1), reg.addr(2), reg.addr(3), reg.addr(4)
    fee_recipient = chain.account(9).address
    model_a = reg.create(a, "a")
    model_b = reg.create(b, "b", parent=model_a, bps=2000)
    model_c = reg.create(c, "c", price=10**18, parent=model_b, bps=3000)
    receipt = reg.buy(buyer, model_c)
    credited = {(e["payee"], e["modelId"]): e["amount"] for e in reg.events(receipt, "RoyaltyCredited")}
    credited |= {(e["recipient"], e["modelId"]): e["amount"] for e in reg.events(receipt, "PlatformFeeCredited")}
    assert credited == {
        (fee_recipient, model_c): 25 * 10**15,  # 2.5% of 1 ETH
        (b, model_b): 234 * 10**15,  # 0.975 * 30% * 80%
        (a, model_a): 58_500 * 10**12,  # 0.975 * 30% * 20%
        (c, model_c): 682_500 * 10**12,  # the rest: 0.975 * 70%
    }
    assert sum(credited.values()) == 10**18
    assert owner  # the owner set the fee at deployment (250 bps to account 9)


def credit_logs(reg, receipt) -> list[tuple[str, str, bytes, int]]:
    """The purchase's credit events in log order: (event, payee, model id, amount)."""
    payee_of = {"PlatformFeeCredited": "recipient", "RoyaltyCredited": "payee", "OverpaymentCredited": "payer"}
    logs = []
    for name, payee in payee_of.items():
        for event in getattr(reg.c.events, name)().process_receipt(receipt, errors=DISCARD):
            logs.append((event["logIndex"], name, event["args"][payee], event["args"]["modelId"], event["args"]["amount"]))
    return [log[1:] for log in sorted(logs)]


def test_the_platform_fee_is_credited_by_its_own_event_right_after_the_purchase(reg, chain):
    fee_recipient = chain.account(9).address
    root = reg.create(reg.addr(1), "root")
    child = reg.create(reg.addr(2), "child", price=10_000, parent=root, bps=5000)
    receipt = reg.buy(reg.addr(3), child, value=10_007)
    [purchased] = reg.c.events.LicensePurchased().process_receipt(receipt, errors=DISCARD)
    [fee] = reg.c.events.PlatformFeeCredited().process_receipt(receipt, errors=DISCARD)
    assert dict(fee["args"]) == {"recipient": fee_recipient, "modelId": child, "amount": 250}  # 2.5% of 10,000 wei
    assert fee["logIndex"] == purchased["logIndex"] + 1
    assert credit_logs(reg, receipt) == [
        ("PlatformFeeCredited", fee_recipient, child, 250),
        ("RoyaltyCredited", reg.addr(1), root, 4875),  # 50% of the 9,750 that remain
        ("RoyaltyCredited", reg.addr(2), child, 4875),
        ("OverpaymentCredited", reg.addr(3), child, 7),
    ]
    assert reg.f.creditOf(fee_recipient).call() == 250
    # the platform's share is never a royalty, even when the platform is the bought model's vendor
    own = reg.create(fee_recipient, "house", price=10_000)
    assert credit_logs(reg, reg.buy(reg.addr(3), own)) == [
        ("PlatformFeeCredited", fee_recipient, own, 250), ("RoyaltyCredited", fee_recipient, own, 9750),
    ]
    assert reg.f.creditOf(fee_recipient).call() == 250 + 10_000


def test_the_fee_event_names_the_recipient_of_the_moment_and_is_omitted_when_the_fee_is_zero(reg):
    owner, treasury = reg.addr(0), reg.addr(8)
    model_id = reg.create(reg.addr(1), "tiny", price=39)
    assert credit_logs(reg, reg.buy(reg.addr(3), model_id)) == [("RoyaltyCredited", reg.addr(1), model_id, 39)]  # 2.5% of 39 floors to 0
    reg.send(reg.f.setPlatformFee(1000, treasury), owner)
    assert credit_logs(reg, reg.buy(reg.addr(4), model_id))[0] == ("PlatformFeeCredited", treasury, model_id, 3)
    reg.send(reg.f.setPlatformFee(0, treasury), owner)
    assert credit_logs(reg, reg.buy(reg.addr(5), model_id)) == [("RoyaltyCredited", reg.addr(1), model_id, 39)]
    assert reg.f.creditOf(treasury).call() == 3


def test_withdraw_moves_exactly_the_credit(reg, vendor):
    model_id = reg.create(vendor, "tiny", price=10**17)
    reg.buy(reg.addr(3), model_id)
    credit = reg.f.creditOf(vendor).call()
    before = reg.w3.eth.get_balance(vendor)
    receipt = reg.send(reg.f.withdraw(), vendor)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert reg.w3.eth.get_balance(vendor) == before + credit - gas
    assert reg.events(receipt, "Withdrawn")[0] == {"payee": vendor, "amount": credit}
    assert reg.f.creditOf(vendor).call() == 0
    reg.reverts("NothingToWithdraw", reg.f.withdraw(), vendor)


def test_reentering_withdraw_from_a_receive_hook_gains_nothing(reg, chain):
    attacker = deploy("ReentrantWithdrawer", reg.c.address, True, sender=reg.addr(5))
    reg.send(attacker.functions.register(slug_hash("bait"), 10**17), reg.addr(5))
    model_id = reg.c.functions.computeModelId(attacker.address, slug_hash("bait")).call()
    reg.buy(reg.addr(3), model_id)
    reg.buy(reg.addr(4), model_id)  # the registry now holds more than the attacker's credit
    credit = reg.f.creditOf(attacker.address).call()
    held_before = reg.w3.eth.get_balance(reg.c.address)
    reg.send(attacker.functions.attack(), reg.addr(5))
    assert attacker.functions.reentryAttempts().call() == 1
    assert attacker.functions.reentrySuccesses().call() == 0
    assert reg.w3.eth.get_balance(attacker.address) == credit
    assert reg.w3.eth.get_balance(reg.c.address) == held_before - credit
    assert reg.f.creditOf(attacker.address).call() == 0


def test_a_reentrant_receiver_that_reverts_keeps_its_credit(reg, chain):
    attacker = deploy("ReentrantWithdrawer", reg.c.address, False, sender=reg.addr(5))
    reg.send(attacker.functions.register(slug_hash("bait"), 10**17), reg.addr(5))
    model_id = reg.c.functions.computeModelId(attacker.address, slug_hash("bait")).call()
    reg.buy(reg.addr(3), model_id)
    credit = reg.f.creditOf(attacker.address).call()
    reg.reverts("WithdrawFailed", attacker.functions.attack(), reg.addr(5))
    assert reg.f.creditOf(attacker.address).call() == credit
    assert reg.w3.eth.get_balance(attacker.address) == 0


# ------------------------------------------------------------------------------- owner


def test_platform_fee_is_owner_only_and_hard_capped(reg, chain):
    owner = reg.addr(0)
    reg.reverts("OwnableUnauthorizedAccount", reg.f.setPlatformFee(100, owner), reg.addr(1))
    reg.reverts("PlatformFeeTooHigh", reg.f.setPlatformFee(1001, owner), owner)
    reg.reverts("InvalidFeeRecipient", reg.f.setPlatformFee(100, "0x" + "00" * 20), owner)
    receipt = reg.send(reg.f.setPlatformFee(1000, reg.addr(8)), owner)
    assert reg.events(receipt, "PlatformFeeChanged")[0] == {"bps": 1000, "recipient": reg.addr(8)}


def test_ownership_moves_in_two_steps(reg):
    owner, successor = reg.addr(0), reg.addr(1)
    reg.send(reg.f.transferOwnership(successor), owner)
    assert reg.f.owner().call() == owner
    reg.send(reg.f.acceptOwnership(), successor)
    assert reg.f.owner().call() == successor


# ------------------------------------------------------------------------------- the interface

# what the contract inherits from OpenZeppelin (Ownable2Step, EIP712, Nonces, ECDSA, the guard):
# documented by OpenZeppelin's own interfaces, not by IModelRegistry
OPENZEPPELIN_ABI = {
    "acceptOwnership", "eip712Domain", "owner", "pendingOwner", "renounceOwnership", "transferOwnership",
    "EIP712DomainChanged", "OwnershipTransferStarted", "OwnershipTransferred",
    "ECDSAInvalidSignature", "ECDSAInvalidSignatureLength", "ECDSAInvalidSignatureS", "InvalidAccountNonce",
    "InvalidShortString", "OwnableInvalidOwner", "OwnableUnauthorizedAccount", "ReentrancyGuardReentrantCall", "StringTooLong",
}


def abi_signatures(abi: list[dict]) -> set[tuple]:
    return {
        (item["type"], item["name"], tuple((i["type"], i.get("indexed")) for i in item["inputs"]),
         tuple(o["type"] for o in item.get("outputs", ())), item.get("stateMutability"))
        for item in abi if "name" in item
    }


def test_the_interface_declares_every_function_event_and_error_of_the_contract():
    interface = compile_contract("contracts/IModelRegistry.sol", "IModelRegistry")["abi"]
    contract = chain_mod.load_artifact()["abi"]
    own = {sig for sig in abi_signatures(contract) if sig[1] not in OPENZEPPELIN_ABI}
    assert abi_signatures(interface) == own
    names = [item["name"] for item in interface if item["type"] == "function"]
    assert names.count("purchaseLicense") == 2 and "PlatformFeeCredited" in {i["name"] for i in interface}


# ------------------------------------------------------------------------------- the Python rule


def test_python_rule_matches_the_worked_example():
    lineage = [LineageNode("c", "C", 3000), LineageNode("b", "B", 2000), LineageNode("a", "A", 0)]
    credits = royalty_split(price_wei=10**18, platform_fee_bps=250, platform_recipient="P", lineage=lineage)
    assert [(c.payee, c.amount_wei) for c in credits] == [("P", 25 * 10**15), ("B", 234 * 10**15), ("A", 58_500 * 10**12), ("C", 682_500 * 10**12)]
    exact_b = Fraction(10**18 * 9750, 10_000) * Fraction(3, 10) * Fraction(8, 10)
    assert credits[1].amount_wei <= exact_b
