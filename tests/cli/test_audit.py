"""`hallmark audit`: a receipt and its proof checked against the chain alone. The batch is built
here as the marketplace builds it (receipts -> hallmark.receipts tree -> `anchorReceipts` sent by
a receipt operator on the session's anvil); the version is published through the services and
revoked by the vendor's own transaction. No marketplace is running: the CLI talks to anvil only."""

from __future__ import annotations

import json
import os

import pytest
from eth_account import Account

from hallmark import receipts
from registry import chain as chain_module
from tests.cli.test_watch import revoke
from tests.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def block_time(chain) -> int:
    return int(chain.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def make_receipt(published, *, served_at: int, **changes) -> receipts.Receipt:
    fields = {
        "receipt_id": "0x" + os.urandom(32).hex(), "model_id": published.model.chain_model_id, "version": published.number,
        "root_digest": "0x" + published.root_digest, "file_sha256": "0x" + "5a" * 32,
        "licensee": Account.from_key(chain_module.development_keys()[2]).address, "device": "0x" + "00" * 20,
        "range_start": 0, "range_end": 4096, "served_at": served_at,
    }
    return receipts.Receipt.from_json({**fields, **changes})


def send(key: str, call):
    """A transaction signed here with `key` and sent raw, as any wallet would."""
    w3 = chain_module.web3()
    account = Account.from_key(key)
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)})
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
    return receipt


def anchor(chain, batch: list[receipts.Receipt]) -> tuple[int, receipts.MerkleTree, dict]:
    """Anchor the batch's root from a receipt operator the owner (the deployer) appoints."""
    contract = chain_module.registry_contract()
    owner, operator = chain.account(0), chain.account(5)
    if not contract.functions.isReceiptOperator(operator.address).call():
        send(chain.keys[0], contract.functions.setReceiptOperator(operator.address, True))
        assert owner.address == contract.functions.owner().call()
    tree = receipts.build_tree([receipts.leaf_hash(r) for r in batch])
    tx = send(chain.keys[5], contract.functions.anchorReceipts(tree.root, len(batch)))
    (event,) = contract.events.ReceiptsAnchored().process_receipt(tx)
    return int(event["args"]["batchId"]), tree, tx


def api_answer(receipt: receipts.Receipt, batch_id: int, tree: receipts.MerkleTree, tx) -> dict:
    """What GET /api/v1/receipts/<id> returns once the receipt's batch is anchored."""
    return {
        "receipt": receipt.to_json(),
        "batch": {"batch_id": batch_id, "root": "0x" + tree.root.hex(), "count": len(tree), 
                  "tx_hash": "0x" + bytes(tx["transactionHash"]).hex(), "block": tx["blockNumber"]},
        "proof": receipts.proof_to_hex(tree.proof(receipts.leaf_hash(receipt))),
        "anchored": True,
    }


@pytest.fixture
def audit(cli, chain, tmp_path):
    def run(answer: dict, *extra: str, name: str = "receipt.json"):
        path = tmp_path / name
        path.write_text(json.dumps(answer))
        return cli.run("audit", str(path), "--rpc", chain.rpc_url, "--registry", chain.address, *extra)

    return run


@pytest.fixture
def batch(chain, live_version):
    """Three receipts of acme/tiny v1 served a minute ago, anchored as batch N."""
    served = block_time(chain) - 60
    batch = [make_receipt(live_version, served_at=served + i) for i in range(3)]
    batch_id, tree, tx = anchor(chain, batch)
    return batch, batch_id, tree, tx


def test_a_valid_receipt_passes_the_audit(audit, batch, live_version):
    receipts_, batch_id, tree, tx = batch
    answer = api_answer(receipts_[1], batch_id, tree, tx)
    done = audit(answer)
    assert done.code == 0, done.text
    assert done.out.startswith(f"valid: receipt {receipts_[1].to_json()['receipt_id']} is anchored on chain and matches it")
    assert f"is in batch {batch_id} (3 receipt(s)" in done.out
    assert f"versionDigest of version 1 is 0x{live_version.root_digest}" in done.out
    assert "ok: the version is not revoked" in done.out

    report = json.loads(audit(answer, "--json").out)
    assert report["outcome"] == "valid" and report["exit_code"] == 0 and report["batch_id"] == batch_id
    assert report["chain"]["batch_root"] == "0x" + tree.root.hex() and report["chain"]["batch_count"] == 3


def test_a_bare_receipt_with_the_proof_given_apart_passes(audit, batch, tmp_path):
    receipts_, batch_id, tree, tx = batch
    (tmp_path / "answer.json").write_text(json.dumps(api_answer(receipts_[0], batch_id, tree, tx)))
    done = audit(receipts_[0].to_json(), "--proof", str(tmp_path / "answer.json"), name="bare.json")
    assert done.code == 0, done.text


def test_a_tampered_receipt_is_refused(audit, batch):
    receipts_, batch_id, tree, tx = batch
    answer = api_answer(receipts_[0], batch_id, tree, tx)
    answer["receipt"]["range_end"] = 8192  # claims more bytes than were served
    done = audit(answer)
    assert done.code == 5, done.text
    assert "proof_mismatch: the proof does not lead from this receipt" in done.out
    assert "the receipt or the proof was altered" in done.out


def test_a_forged_proof_is_refused(audit, batch, live_version, chain):
    receipts_, batch_id, tree, tx = batch
    answer = api_answer(receipts_[0], batch_id, tree, tx)
    answer["proof"][0] = "0x" + "77" * 32
    assert audit(answer).code == 5
    # a receipt never anchored, with a proof of its own one-leaf tree, claiming batch N
    outsider = make_receipt(live_version, served_at=receipts_[0].served_at)
    forged = {**api_answer(outsider, batch_id, receipts.build_tree([receipts.leaf_hash(outsider)]), tx), "proof": []}
    done = audit(forged)
    assert done.code == 5 and "does not lead from this receipt" in done.out
    # and a batch the chain never anchored
    unknown = audit({**answer, "batch": {**answer["batch"], "batch_id": batch_id + 1000}})
    assert unknown.code == 5 and f"batch {batch_id + 1000} is not anchored on this registry" in unknown.out


def test_a_receipt_for_bytes_the_vendor_did_not_sign_is_refused(audit, chain, live_version):
    wrong = make_receipt(live_version, served_at=block_time(chain) - 5, root_digest="0x" + "66" * 32)
    batch_id, tree, tx = anchor(chain, [wrong])
    done = audit(api_answer(wrong, batch_id, tree, tx))
    assert done.code == 6, done.text
    assert f"the receipt's root digest 0x{'66' * 32} is not the one the vendor signed on chain (0x{live_version.root_digest})" in done.out
    missing = make_receipt(live_version, served_at=block_time(chain) - 5, version=9)
    batch_id, tree, tx = anchor(chain, [missing])
    assert "the registry has no version 9" in audit(api_answer(missing, batch_id, tree, tx)).out


def test_a_version_revoked_before_it_was_served_is_flagged(audit, chain, vendor, live_version):
    earlier = make_receipt(live_version, served_at=block_time(chain) - 30)
    revoked_tx = revoke(vendor, live_version)
    revoked_at = int(chain.rpc("eth_getBlockByNumber", [hex(revoked_tx["blockNumber"]), False])["timestamp"], 16)
    later = make_receipt(live_version, served_at=revoked_at + 10)
    batch_id, tree, tx = anchor(chain, [earlier, later])

    flagged = audit(api_answer(later, batch_id, tree, tx))
    assert flagged.code == 8, flagged.text
    assert flagged.out.startswith(f"revoked_when_served: the version was revoked in block {revoked_tx['blockNumber']}")
    assert "before the file was served" in flagged.out
    # served before the revocation: still a valid receipt, and the audit says the revocation came after
    fine = audit(api_answer(earlier, batch_id, tree, tx))
    assert fine.code == 0, fine.text
    assert "after that" in fine.out
    # a revocation log looked for only after it happened cannot be found: said, not guessed
    blind = audit(api_answer(later, batch_id, tree, tx), "--from-block", str(revoked_tx["blockNumber"] + 1))
    assert blind.code == 1 and "pass a lower --from-block" in blind.err


def test_not_anchored_malformed_and_unreachable(audit, cli, chain, live_version, tmp_path):
    receipt = make_receipt(live_version, served_at=block_time(chain))
    pending = audit({"receipt": receipt.to_json(), "batch": None, "proof": None, "anchored": False})
    assert pending.code == 4 and "not anchored yet" in pending.out

    assert audit({"receipt": {**receipt.to_json(), "version": "1"}, "batch": None, "proof": None}).code == 2
    answer = {"receipt": receipt.to_json(), "batch": {"batch_id": 1}, "proof": ["0x12"]}
    bad_proof = audit(answer)
    assert bad_proof.code == 2 and "proof" in bad_proof.err
    assert audit({**answer, "proof": ["0x" + "00" * 32] * 65}).code == 2  # a proof longer than any tree is deep
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"receipt": receipt.to_json(), "pad": "x" * 300_000}))
    assert cli.run("audit", str(huge), "--rpc", chain.rpc_url, "--registry", chain.address).code == 2
    assert cli.run("audit", str(huge), "--rpc", chain.rpc_url).code == 2  # no registry

    answer = {"receipt": receipt.to_json(), "batch": {"batch_id": 1}, "proof": []}
    (tmp_path / "r.json").write_text(json.dumps(answer))
    down = cli.run("audit", str(tmp_path / "r.json"), "--rpc", f"http://127.0.0.1:{free_port()}", "--registry", chain.address)
    assert down.code == 7 and "chain unreachable" in down.err
