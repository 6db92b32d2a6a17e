"""`hallmark login`: Sign-In with Ethereum (EIP-4361) and keep the API token in the config folder."""

from __future__ import annotations

import argparse
import socket
from urllib.parse import urlsplit

from .. import config
from ..api import Api
from ..console import CommandError, say
from ..keys import load_account
from ..siwe import sign_message, siwe_message
from .common import endpoint

DOMAIN_MISMATCH = 9  # exit code: the server asked for a signature valid on another site

_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_authority(url: str) -> str:
    """`host[:port]` of `url` as an EIP-4361 `domain` names it: lower case, no user info, no
    default port (`https://Hallmark.example:443/` -> `hallmark.example`)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"


def run(args: argparse.Namespace) -> int:
    url = endpoint(args)
    account = load_account(args.keystore)
    api = Api(url)
    nonce = api.post("/api/v1/auth/nonce")
    host = endpoint_authority(url)
    default_port = _DEFAULT_PORTS.get(urlsplit(url).scheme.lower())
    if str(nonce["domain"]).lower() not in (host, f"{host}:{default_port}"):
        # A sign-in message is a credential for the site it names: signing one for another domain
        # could sign you in there, on behalf of whoever runs this endpoint (a phishing relay).
        raise CommandError(
            f"refusing to sign: the server at {url} asks you to sign in to {nonce['domain']!r}, not {host!r}. "
            "Check the endpoint (--endpoint or HALLMARK_ENDPOINT); if the marketplace is served under another name, "
            "log in to that address. Nothing was signed.",
            DOMAIN_MISMATCH,
        )
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
