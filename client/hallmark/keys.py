"""The user's Ethereum key: an encrypted JSON keystore or $HALLMARK_PRIVATE_KEY. Never printed.

Where the key comes from:

1. `--keystore PATH` on the command line: it wins over both environment variables;
2. else $HALLMARK_KEYSTORE or $HALLMARK_PRIVATE_KEY, whichever is set. When both are set the
   command refuses (exit KEY_SOURCE_CONFLICT, nothing signed): a shell that kept a vendor's
   keystore from earlier would otherwise sign, or pay, as the vendor without a word.

A keystore's password comes from $HALLMARK_KEYSTORE_PASSWORD, else a prompt. The source and the
address it gives are said on stderr in one line (`key: 0x… from $HALLMARK_PRIVATE_KEY`), so a
transcript shows who signed.

Example::

    >>> import os; os.environ["HALLMARK_PRIVATE_KEY"] = "0x" + "11" * 32
    >>> load_account(announce=False).address
    '0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A'
"""

from __future__ import annotations

import getpass
import json
import os
import sys

from eth_account import Account
from eth_account.signers.local import LocalAccount

from .console import CommandError, usage

KEY_SOURCE_CONFLICT = 10  # exit code: $HALLMARK_KEYSTORE and $HALLMARK_PRIVATE_KEY both set, no --keystore


def load_account(keystore: str | None = None, *, announce: bool = True) -> LocalAccount:
    """The signing key. Args: `keystore`, the `--keystore` option (wins over the environment);
    `announce`, say the key's source and address on stderr (never the key)."""
    env_keystore = os.environ.get("HALLMARK_KEYSTORE")
    env_key = os.environ.get("HALLMARK_PRIVATE_KEY")
    if keystore:
        overridden = [f"${name}" for name, value in (("HALLMARK_KEYSTORE", env_keystore), ("HALLMARK_PRIVATE_KEY", env_key)) if value]
        account = _from_keystore(keystore)
        source = f"the keystore {keystore} (--keystore" + (f", not {' or '.join(overridden)})" if overridden else ")")
    elif env_keystore and env_key:
        raise CommandError(
            "two keys are set: $HALLMARK_KEYSTORE and $HALLMARK_PRIVATE_KEY; which one should sign? "
            "`unset HALLMARK_KEYSTORE` or `unset HALLMARK_PRIVATE_KEY`, or pass --keystore PATH. Nothing was signed.",
            KEY_SOURCE_CONFLICT,
        )
    elif env_keystore:
        account = _from_keystore(env_keystore)
        source = f"the keystore {env_keystore} ($HALLMARK_KEYSTORE)"
    elif env_key:
        try:
            account = Account.from_key(env_key.strip())
        except Exception:  # the message of some errors could echo the value: never show it
            raise CommandError("HALLMARK_PRIVATE_KEY is not a valid private key (64 hex characters)") from None
        source = "$HALLMARK_PRIVATE_KEY"
    else:
        raise usage("this command signs with your key: pass --keystore PATH (or set HALLMARK_KEYSTORE) or set HALLMARK_PRIVATE_KEY")
    if announce:
        print(f"key: {account.address} from {source}", file=sys.stderr, flush=True)
    return account


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
