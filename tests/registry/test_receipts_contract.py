"""Download receipts on chain (issue 18): `anchorReceipts` and its operators, and the shared Merkle
library (hallmark.receipts) held to OpenZeppelin's JavaScript StandardMerkleTree and to its
Solidity `MerkleProof.verify` (contracts/test/ReceiptProofChecker.sol, by eth_call).

Every chain test runs against the real contract on anvil, rolled back afterwards."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess

import pytest
from eth_utils import keccak

from hallmark import receipts
from hallmark.receipts import Receipt, ReceiptError, build_tree, decode_header, encode_header, leaf_hash, verify_proof
from registry import chain as chain_mod
from registry.services import registry_deploy

from .kit import ROOT, Registry, deploy

UINT64_MAX = 2**64 - 1

# StandardMerkleTree.of(values, types) from @openzeppelin/merkle-tree: root, each value's leaf and proof
OZ_TREE = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const { values, types } = JSON.parse(input);
  const tree = StandardMerkleTree.of(values, types);
  const out = { root: tree.root, leaves: [], proofs: [] };
  for (const [i, v] of tree.entries()) {
    out.leaves[i] = tree.leafHash(v);
    out.proofs[i] = tree.getProof(i);
  }
  process.stdout.write(JSON.stringify(out));
});
"""


def openzeppelin_tree(items: list[Receipt]) -> dict:
    # integers as decimal strings: a uint64 does not fit a JavaScript number
    values = [[str(v) if isinstance(v, int) else v for v in r.to_json().values()] for r in items]
    result = subprocess.run(
        ["node", "-e", OZ_TREE], cwd=ROOT, input=json.dumps({"values": values, "types": list(receipts.ABI_TYPES)}),
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(result.stdout)


def make_receipt(i: int, **changes) -> Receipt:
    fields = {
        "receipt_id": keccak(text=f"receipt {i}"),
        "model_id": keccak(text=f"model {i % 3}"),
        "version": 1 + i % 5,
        "root_digest": keccak(text=f"root {i % 3}"),
        "file_sha256": keccak(text=f"file {i}"),
        "licensee": "0x" + keccak(text=f"licensee {i}")[:20].hex(),
        "device": receipts.ZERO_ADDRESS if i % 2 else "0x" + keccak(text=f"device {i}")[:20].hex(),
        "range_start": 0 if i % 4 else 1024 * i,
        "range_end": 4096 * (i + 1) if i else UINT64_MAX,
        "served_at": 1_700_000_000 + i,
    }
    fields.update(changes)
    return Receipt(**fields)


def hex32(b: bytes) -> str:
    return "0x" + b.hex()


@pytest.fixture
def reg(chain):
    return Registry(chain)


@pytest.fixture
def checker(chain):
    return deploy("ReceiptProofChecker", sender=chain.account(0).address)


# ------------------------------------------------------------------------------ the contract


def test_the_relayer_is_a_receipt_operator_once_the_owner_deploys(reg):
    # tests/conftest.py deploys with the first development key as the owner
    relayer = chain_mod.relayer_account().address
    assert reg.f.owner().call() == reg.addr(0)
    assert reg.f.isReceiptOperator(relayer).call()
    assert not reg.f.isReceiptOperator(reg.addr(3)).call()


def test_an_operator_anchors_batches_numbered_from_one(reg):
    operator = reg.addr(0)
    assert reg.f.receiptBatchCount().call() == 0
    assert reg.f.receiptBatch(1).call() == [b"\x00" * 32, 0, 0]
    root = keccak(text="batch one")
    assert reg.f.anchorReceipts(root, 3).call({"from": operator}) == 1
    receipt = reg.send(reg.f.anchorReceipts(root, 3), operator)
    assert reg.events(receipt, "ReceiptsAnchored") == [{"batchId": 1, "root": root, "count": 3}]
    at = reg.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert reg.f.receiptBatch(1).call() == [root, 3, at]

    second = keccak(text="batch two")
    receipt = reg.send(reg.f.anchorReceipts(second, 2**32 - 1), operator)
    assert reg.events(receipt, "ReceiptsAnchored")[0]["batchId"] == 2
    assert reg.f.receiptBatch(2).call()[:2] == [second, 2**32 - 1]
    assert reg.f.receiptBatchCount().call() == 2
    assert reg.f.receiptBatch(1).call()[0] == root  # the earlier batch is untouched


def test_anyone_else_is_refused_until_the_owner_makes_them_an_operator(reg):
    owner, stranger = reg.addr(0), reg.addr(4)
    root = keccak(text="r")
    error = reg.reverts("NotReceiptOperator", reg.f.anchorReceipts(root, 1), stranger)
    assert error.error_args == (stranger.lower(),)
    # only the owner grants the role, not an operator, not the stranger itself
    reg.reverts("OwnableUnauthorizedAccount", reg.f.setReceiptOperator(stranger, True), stranger)

    receipt = reg.send(reg.f.setReceiptOperator(stranger, True), owner)
    assert reg.events(receipt, "ReceiptOperatorChanged") == [{"operator": stranger, "allowed": True}]
    assert reg.f.isReceiptOperator(stranger).call()
    reg.reverts("OwnableUnauthorizedAccount", reg.f.setReceiptOperator(reg.addr(5), True), stranger)
    reg.send(reg.f.anchorReceipts(root, 1), stranger)

    receipt = reg.send(reg.f.setReceiptOperator(stranger, False), owner)
    assert reg.events(receipt, "ReceiptOperatorChanged") == [{"operator": stranger, "allowed": False}]
    reg.reverts("NotReceiptOperator", reg.f.anchorReceipts(root, 1), stranger)
    assert reg.f.receiptBatchCount().call() == 1


def test_an_empty_root_or_count_is_an_invalid_batch(reg):
    operator = reg.addr(0)
    error = reg.reverts("InvalidReceiptBatch", reg.f.anchorReceipts(b"\x00" * 32, 5), operator)
    assert error.error_args == (b"\x00" * 32, 5)
    root = keccak(text="r")
    error = reg.reverts("InvalidReceiptBatch", reg.f.anchorReceipts(root, 0), operator)
    assert error.error_args == (root, 0)
    assert reg.f.receiptBatchCount().call() == 0


def test_anchoring_costs_the_same_whatever_the_count(reg):
    """Execution gas is equal for 1 and 4 billion receipts; only the calldata bytes differ."""
    operator = reg.addr(0)
    reg.send(reg.f.anchorReceipts(keccak(text="warm"), 1), operator)  # later batches: the usual case

    def execution_gas(count: int) -> int:
        call = reg.f.anchorReceipts(keccak(text=f"n{count}"), count)
        data = bytes.fromhex(call._encode_transaction_data()[2:])
        intrinsic = 21_000 + sum(16 if b else 4 for b in data)
        return reg.send(call, operator)["gasUsed"] - intrinsic

    assert execution_gas(1) == execution_gas(10_000) == execution_gas(2**32 - 1)


def test_deploying_for_another_owner_makes_no_operator(chain):
    keys = chain.keys
    record = registry_deploy(
        rpc_url=chain.rpc_url, private_key=keys[1], fee_bps=0, owner=chain.account(2).address, write_record=False
    )
    assert record["receipt_operator"] is None
    contract = chain_mod.registry_contract(record["address"])
    assert not contract.functions.isReceiptOperator(chain.account(1).address).call()
    assert not contract.functions.isReceiptOperator(chain_mod.relayer_account().address).call()
    # the deployer as owner: the relayer (not the deployer) is made the operator
    record = registry_deploy(rpc_url=chain.rpc_url, private_key=keys[1], fee_bps=0, write_record=False)
    relayer = chain_mod.relayer_account().address
    assert record["receipt_operator"] == relayer != chain.account(1).address
    assert chain_mod.registry_contract(record["address"]).functions.isReceiptOperator(relayer).call()


# ------------------------------------------------------------------------------ the tree


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100])
def test_root_and_proofs_equal_openzeppelins_and_pass_merkle_proof_verify(n, checker):
    items = [make_receipt(i) for i in range(n)]
    leaves = [leaf_hash(r) for r in items]
    tree = build_tree(leaves)
    oz = openzeppelin_tree(items)

    assert hex32(tree.root) == oz["root"]
    assert [hex32(leaf) for leaf in leaves] == oz["leaves"]
    for i, (receipt, leaf) in enumerate(zip(items, leaves, strict=True)):
        proof = tree.proof(leaf)
        assert [hex32(p) for p in proof] == oz["proofs"][i]
        assert verify_proof(proof, tree.root, leaf)
        assert checker.functions.verify(proof, tree.root, leaf).call()
        if i < 8:  # the contract's own abi.encode double hash gives the same leaf
            assert checker.functions.leaf(*receipt.abi_values()).call() == leaf
    assert len(tree) == n
    if n == 1:
        assert tree.root == leaves[0] and tree.proof(leaves[0]) == []


def test_leaf_order_does_not_change_the_tree():
    leaves = [leaf_hash(make_receipt(i)) for i in range(9)]
    assert build_tree(leaves).root == build_tree(list(reversed(leaves))).root


TAMPERED = {
    "receipt_id": keccak(text="other id"),
    "model_id": keccak(text="other model"),
    "version": 99,
    "root_digest": keccak(text="other root"),
    "file_sha256": keccak(text="other file"),
    "licensee": "0x" + "11" * 20,
    "device": "0x" + "22" * 20,
    "range_start": 1,
    "range_end": 4095,
    "served_at": 1_800_000_000,
}


def test_a_tampered_receipt_field_fails_both_checks(checker):
    items = [make_receipt(i) for i in range(7)]
    tree = build_tree([leaf_hash(r) for r in items])
    original = items[2]
    proof = tree.proof(leaf_hash(original))
    assert set(TAMPERED) == set(receipts.FIELD_NAMES)
    for name, value in TAMPERED.items():
        tampered = dataclasses.replace(original, **{name: value})
        assert tampered != original, name
        leaf = leaf_hash(tampered)
        assert leaf not in tree
        assert not verify_proof(proof, tree.root, leaf), name
        assert not checker.functions.verify(proof, tree.root, leaf).call(), name


def test_a_forged_proof_fails_both_checks(checker):
    items = [make_receipt(i) for i in range(7)]
    leaves = [leaf_hash(r) for r in items]
    tree = build_tree(leaves)
    leaf = leaves[3]
    proof = tree.proof(leaf)
    flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    forgeries = {
        "a sibling flipped": flipped,
        "a sibling dropped": proof[:-1],
        "a sibling added": [*proof, keccak(text="x")],
        "another leaf's proof": tree.proof(leaves[4]),
        "siblings reordered": list(reversed(proof)),
        "no proof": [],
    }
    for label, forged in forgeries.items():
        assert forged != proof, label
        assert not verify_proof(forged, tree.root, leaf), label
        assert not checker.functions.verify(forged, tree.root, leaf).call(), label
    # nor does a genuine proof against another batch's root
    other = build_tree([leaf_hash(make_receipt(i)) for i in range(7, 14)]).root
    assert not verify_proof(proof, other, leaf)
    assert not checker.functions.verify(proof, other, leaf).call()
    # a receipt outside the tree has no proof to give
    with pytest.raises(KeyError):
        tree.proof(leaf_hash(make_receipt(50)))


def test_malformed_proofs_and_trees_are_refused_without_hashing_garbage():
    leaf = leaf_hash(make_receipt(0))
    assert not verify_proof([leaf] * (receipts.MAX_PROOF_LENGTH + 1), leaf, leaf)
    assert not verify_proof([b"\x01" * 31], leaf, leaf)
    assert not verify_proof([], leaf[:31], leaf[:31])
    with pytest.raises(ValueError):
        build_tree([])
    with pytest.raises(ValueError):
        build_tree([b"short"])
    with pytest.raises(ReceiptError):
        receipts.proof_from_hex(["0x" + "00" * 32] * (receipts.MAX_PROOF_LENGTH + 1))
    with pytest.raises(ReceiptError):
        receipts.proof_from_hex(["0x1234"])
    proof = build_tree([leaf, leaf_hash(make_receipt(1))]).proof(leaf)
    assert receipts.proof_from_hex(receipts.proof_to_hex(proof)) == proof


# ------------------------------------------------------------------------ JSON and the header


def test_the_json_form_and_header_round_trip_canonically():
    receipt = make_receipt(3)
    data = receipt.to_json()
    assert list(data) == list(receipts.FIELD_NAMES)
    assert data["receipt_id"] == hex32(receipt.receipt_id) and data["receipt_id"].islower()
    assert data["licensee"] == receipt.licensee and data["licensee"] != data["licensee"].lower()  # EIP-55
    assert data["device"] == receipts.ZERO_ADDRESS
    assert Receipt.from_json(data) == receipt
    assert Receipt.from_json(json.loads(json.dumps(data))) == receipt

    header = encode_header(receipt)
    assert "=" not in header and "+" not in header and "/" not in header
    canonical = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    assert canonical == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    assert decode_header(header) == receipt
    # the largest receipt possible stays well within the header bound
    biggest = make_receipt(1, version=2**32 - 1, range_start=UINT64_MAX, range_end=UINT64_MAX, served_at=UINT64_MAX)
    assert len(encode_header(biggest)) < receipts.MAX_HEADER_LENGTH // 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": True}, "version"),
        ({"version": 1.0}, "version"),
        ({"version": 2**32}, "version"),
        ({"range_end": -1}, "range_end"),
        ({"served_at": "1700000000"}, "served_at"),
        ({"receipt_id": "0x1234"}, "receipt_id"),
        ({"model_id": "0x" + "zz" * 32}, "model_id"),
        ({"licensee": "0x" + "ab" * 19}, "licensee"),
        ({"licensee": "0xAbCdEf0000000000000000000000000000000000"}, "licensee"),  # a broken checksum
        ({"range_start": 10, "range_end": 9}, "range_start"),
    ],
)
def test_a_malformed_receipt_is_refused(change, message):
    data = make_receipt(1).to_json() | change
    with pytest.raises(ReceiptError, match=message):
        Receipt.from_json(data)


def test_missing_or_extra_keys_are_refused():
    data = make_receipt(1).to_json()
    with pytest.raises(ReceiptError, match="missing"):
        Receipt.from_json({k: v for k, v in data.items() if k != "device"})
    with pytest.raises(ReceiptError, match="unknown"):
        Receipt.from_json(data | {"note": "x"})


def test_a_bad_header_is_refused_before_parsing_what_it_need_not():
    with pytest.raises(ReceiptError, match="longer"):
        decode_header("A" * (receipts.MAX_HEADER_LENGTH + 1))
    for text in ("", "not base64!", base64.urlsafe_b64encode(b"[1, 2]").decode(), base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=")):
        with pytest.raises(ReceiptError):
            decode_header(text)
    nested = base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")
    assert len(nested) <= receipts.MAX_HEADER_LENGTH
    with pytest.raises(ReceiptError):
        decode_header(nested)
