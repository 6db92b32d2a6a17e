"""The user's Ethereum key: an encrypted JSON keystore or $HALLMARK_PRIVATE_KEY. Never printed.

Order: `--keystore PATH` (or $HALLMARK_KEYSTORE) with its password from
$HALLMARK_KEYSTORE_PASSWORD or a prompt, else $HALLMARK_PRIVATE_KEY (0x-hex).
"""

from __future__ import annotations

import getpass
import json
import os

from eth_account import Account
from eth_account.signers.local import LocalAccount

from .console import CommandError, usage


def load_account(keystore: str | None = None) -> LocalAccount:
    path = keystore or os.environ.get("HALLMARK_KEYSTORE")
    if path:
        return _from_keystore(path)
    raw = os.environ.get("HALLMARK_PRIVATE_KEY")
    if raw:
        try:
            return Account.from_key(raw.strip())
        except Exception:  # the message of some errors could echo the value: never show it
            raise CommandError("HALLMARK_PRIVATE_KEY is not a valid private key (64 hex characters)") from None
    raise usage("this command signs with your key: pass --keystore PATH (or set HALLMARK_KEYSTORE) or set HALLMARK_PRIVATE_KEY")


def _from_keystore(path: str) -> LocalAccount:
    try:
        with open(os.path.expanduser(path)) as fh:
            keystore = json.load(fh)
    except OSError as exc:
        raise CommandError(f"cannot read the keystore {path}: {exc.strerror}") from None
    except ValueError:
        raise CommandError(f"{path} is not a JSON keystore") from None
    password = os.environ.get("HALLMARK_KEYSTORE_PASSWORD")
    if password is None:
        password = getpass.getpass(f"password for {path}: ")
    try:
        return Account.from_key(Account.decrypt(keystore, password))
    except ValueError:
        raise CommandError(f"cannot decrypt {path}: wrong password, or not an Ethereum keystore") from None
    except Exception:
        raise CommandError(f"cannot decrypt {path}: not an Ethereum keystore") from None
