"""`hallmark buy vendor/name [--seats N]`: show the price (times the seats) and royalty split, then
pay `purchaseLicense` (`purchaseLicenseSeats` for several seats) from the buyer's own key through an
RPC node (the marketplace never holds the key) and report the licence and the seats it holds."""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, cast

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ..console import CommandError, confirm, eth, say, usage
from ..keys import load_account
from ..verify import connect
from .common import api, repo_id

if TYPE_CHECKING:
    from web3.types import TxParams

POLL_SECONDS = 0.5
MAX_SEATS = 10_000  # the contract's MAX_SEATS_PER_PURCHASE


def run(args: argparse.Namespace) -> int:
    vendor_slug, slug = repo_id(args.repo)
    rpc_url = args.rpc or os.environ.get("HALLMARK_RPC_URL")
    if not rpc_url:
        raise usage("the purchase is sent from your key through an Ethereum node: pass --rpc URL or set HALLMARK_RPC_URL")
    account = load_account(args.keystore)
    client = api(args)
    seats = getattr(args, "seats", None)
    if seats is not None and not 1 <= seats <= MAX_SEATS:
        raise usage(f"--seats is a whole number from 1 to {MAX_SEATS}")
    licensee = to_checksum_address(args.licensee) if args.licensee else account.address
    params: dict[str, str | int] = {"licensee": licensee}
    if seats is not None:
        params["seats"] = seats
    offer = client.get(f"/api/v1/models/{vendor_slug}/{slug}/purchase", params=params)
    _show(offer, account)
    if not args.yes and not confirm(f"pay {eth(offer['price_wei'])} ETH from {account.address}?"):
        raise CommandError("nothing was bought")

    tx_hash = _send(rpc_url, account, offer["transaction"], args.timeout)
    say(f"transaction {tx_hash} mined; asking the marketplace for the licence …")
    deadline = time.monotonic() + args.timeout
    while True:
        status, answer = client.request("POST", "/api/v1/purchases", json={"tx_hash": tx_hash})
        if status != 202:
            break
        if time.monotonic() > deadline:
            raise CommandError(f"the marketplace has not seen {tx_hash} yet; run `hallmark buy` later or POST it to /api/v1/purchases")
        time.sleep(POLL_SECONDS)
    for licence in answer["licenses"]:
        expiry = "perpetual" if licence["perpetual"] else _when(licence["expires_at"])
        held = licence.get("seats", 1)
        say(
            f"licence: {offer['repo_id']} ({licence['model_id']}) for {licence['licensee']}, {expiry}, "
            f"{held} seat{'s' if held != 1 else ''}, block {licence['block']}"
        )
    return 0


def _when(value: int | float | str | None) -> str:
    """An expiry (unix seconds, or ISO 8601 from the API) as `until YYYY-MM-DD HH:MM:SS UTC`."""
    if value is None:
        return "no expiry"
    try:
        if isinstance(value, (int, float)) or str(value).isdigit():
            moment = datetime.fromtimestamp(int(value), timezone.utc)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return f"until {value}"
    return "until " + moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _show(offer: dict, account: LocalAccount) -> None:
    say(f"{offer['repo_id']}  (model {offer['model_id']})")
    seats = int(offer.get("seats", 1))
    if seats == 1:
        say(f"  price     {offer['price_wei']} wei = {eth(offer['price_wei'])} ETH")
    else:
        say(f"  price     {offer['price_wei']} wei = {eth(offer['price_wei'])} ETH ({seats} seats x {offer['unit_price_wei']} wei)")
    if "seats_after" in offer:
        say(f"  seats     {offer['seats_after']} after this purchase ({offer['seats_held']} held now)")
    say(f"  licensee  {offer['licensee']}" + ("" if offer["licensee"] == account.address else f" (paid by {account.address})"))
    say(f"  licence   {'perpetual' if offer['perpetual'] else _when(offer['expires_at'])}")
    say("  royalties")
    for credit in offer["royalties"]:
        say(f"    {credit['role']:<10} {credit['payee']}  {credit['amount_wei']:>22} wei = {eth(credit['amount_wei'])} ETH")


def _send(rpc_url: str, account: LocalAccount, unsigned: dict, timeout: float) -> str:
    """Fill nonce, gas and EIP-1559 fees, sign locally, send, wait for the receipt."""
    import requests
    from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

    w3 = connect(rpc_url)
    try:
        chain_id = w3.eth.chain_id
        if chain_id != int(unsigned["chainId"]):
            raise CommandError(f"the node at {rpc_url} serves chain {chain_id}, the marketplace sells on chain {unsigned['chainId']}")
        tx = {
            "from": account.address,
            "to": to_checksum_address(unsigned["to"]),
            "data": unsigned["data"],
            "value": int(unsigned["value"], 16) if isinstance(unsigned["value"], str) else int(unsigned["value"]),
            "chainId": chain_id,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        }
        tx["gas"] = w3.eth.estimate_gas(cast("TxParams", tx))
        base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            tx["gasPrice"] = w3.eth.gas_price
            most = tx["gas"] * tx["gasPrice"]
        else:
            tip = w3.eth.max_priority_fee
            tx.update(type=2, maxPriorityFeePerGas=tip, maxFeePerGas=2 * base_fee + tip)
            most = tx["gas"] * tx["maxFeePerGas"]
        balance = w3.eth.get_balance(account.address)
        if balance < tx["value"] + most:
            raise CommandError(f"{account.address} holds {eth(balance)} ETH; the purchase needs up to {eth(tx['value'] + most)} ETH with gas")
        del tx["from"]
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    except ContractLogicError as exc:
        raise CommandError(f"the registry refuses this purchase: {exc}") from None
    except TimeExhausted:
        raise CommandError(f"the purchase was sent but not mined within {timeout:.0f} s; check it on the chain later") from None
    except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError):
        raise CommandError(f"the node at {rpc_url} does not answer") from None
    except Web3Exception as exc:
        raise CommandError(f"the node at {rpc_url} refused the purchase: {exc}") from None
    if receipt["status"] != 1:
        raise CommandError(f"the purchase {tx_hash.to_0x_hex()} reverted: nothing was bought")
    return tx_hash.to_0x_hex()
