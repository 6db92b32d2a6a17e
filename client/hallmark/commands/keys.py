"""`hallmark keys init | register | show`: the vendor's P-256 key for OpenSSF Model Signing.

`init` makes the key (PEM, mode 0600) in the config folder (or `--out`) and prints its public
PEM; `register` publishes the public key with your vendor account
(`POST /api/v1/vendors/<vendor>/keys`), after which every version you publish names it in its
signed metadata and `hallmark publish` signs its OMS bundle (`model.sig`) with it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import config, oms
from ..api import Api
from ..console import CommandError, say, usage
from .common import api

KEY_FILE = "oms-signing-key.pem"


def default_key_path() -> Path:
    """$HALLMARK_SIGNING_KEY, else `oms-signing-key.pem` in the config folder."""
    configured = os.environ.get("HALLMARK_SIGNING_KEY")
    return Path(configured).expanduser() if configured else config.config_dir() / KEY_FILE


def signing_key(given: str | None) -> tuple[Path, oms.ec.EllipticCurvePrivateKey] | None:
    """The key `--signing-key` names (it must exist), else the default one if it exists."""
    path = Path(given).expanduser() if given else default_key_path()
    if not path.exists():
        if given or os.environ.get("HALLMARK_SIGNING_KEY"):
            raise usage(f"no signing key at {path}: make one with `hallmark keys init --out {path}`")
        return None
    try:
        return path, oms.load_private_key(path)
    except oms.SigningKeyError as exc:
        raise CommandError(f"{exc} [{exc.code}]") from None


def run(args: argparse.Namespace) -> int:
    if args.action == "init":
        return _init(args)
    found = signing_key(args.key)
    if found is None:
        raise CommandError(f"no signing key at {default_key_path()}: run `hallmark keys init` first")
    path, key = found
    if args.action == "show":
        say(oms.public_key_pem(key).rstrip())
        say(f"sha256 {oms.key_sha256(key)}  ({path})")
        return 0
    client = api(args, token_required=True)
    vendor = args.vendor or _vendor_slug(client)
    answer = client.post(f"/api/v1/vendors/{vendor}/keys", json={"public_key_pem": oms.public_key_pem(key)})
    say(f"registered with {vendor} at {client.endpoint}: sha256 {answer['sha256']}")
    say("the versions you publish from now on name this key in their signed metadata and carry model.sig")
    return 0


def _init(args: argparse.Namespace) -> int:
    path = Path(args.out).expanduser() if args.out else default_key_path()
    if path.exists() and not args.force:
        raise CommandError(f"{path} exists already: keep it, or pass --force to replace it (versions signed with it keep naming it)")
    key = oms.generate_key()
    if not args.out:
        config.ensure_dir()
    path.parent.mkdir(parents=True, exist_ok=True)
    config.write_private_bytes(path, oms.private_key_pem(key))
    say(oms.public_key_pem(key).rstrip())
    say(f"sha256 {oms.key_sha256(key)}  (private key: {path}, mode 0600)")
    say("publish it with `hallmark keys register`; give the public key to buyers for `model_signing verify key`")
    return 0


def _vendor_slug(client: Api) -> str:
    """Your vendor slug, read from your models (403 not_a_vendor without a vendor account)."""
    models = client.get("/api/v1/vendor/models")
    if models:
        return str(models[0]["vendor"])
    raise usage("pass --vendor SLUG (your vendor account has no model yet to read it from)")
