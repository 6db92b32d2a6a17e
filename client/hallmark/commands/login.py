"""`hallmark login`: Sign-In with Ethereum (EIP-4361) and keep the API token in the config folder."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from .. import config
from ..api import Api
from ..console import say, warn
from ..keys import load_account
from ..siwe import sign_message, siwe_message
from .common import endpoint


def run(args) -> int:
    url = endpoint(args)
    account = load_account(args.keystore)
    api = Api(url)
    nonce = api.post("/api/v1/auth/nonce")
    host = urlsplit(url).netloc
    if nonce["domain"] != host:
        warn(f"the server asks you to sign in to {nonce['domain']!r} while you are talking to {host!r}")
    text = siwe_message(domain=nonce["domain"], address=account.address, uri=nonce["uri"], chain_id=nonce["chain_id"], nonce=nonce["nonce"])
    answer = api.post(
        "/api/v1/auth/siwe",
        json={"message": text, "signature": sign_message(text, account.key), "token_name": f"hallmark-cli on {socket.gethostname()}"[:100]},
    )
    path = config.save_login(url, token=answer["token"], wallet=answer["wallet"], prefix=answer["prefix"], expires_at=answer.get("expires_at"))
    say(f"signed in to {url} as {answer['wallet']}")
    if len(answer.get("wallets") or []) > 1:
        say(f"wallets of this account: {', '.join(answer['wallets'])}")
    expiry = f", expires {answer['expires_at']}" if answer.get("expires_at") else ""
    say(f"token {answer['prefix']}… saved in {path}{expiry}")
    if args.show_token:
        say(answer["token"])
    return 0
