"""`hallmark`: the command-line client for vendors and edge devices.

    hallmark login   [--endpoint URL]                      Sign-In with Ethereum, keep the API token
    hallmark publish DIR --model vendor/name [--no-wait]   hash, upload, sign and publish a version
    hallmark buy     vendor/name [--licensee 0x…] [--yes]  pay for a licence from your own key
    hallmark pull    vendor/name [--revision v3] [--dir D] download, then verify against the chain
    hallmark pull    --clean DIR                           remove what an interrupted pull left beside DIR
    hallmark verify  DIR MODEL@VERSION [--rpc URL] [--registry 0x…] [--endpoint URL]   check files against the chain
    hallmark device  init | register --name NAME | show | report   this device's key and registration
    hallmark keys    init [--out PEM] | register | show    your P-256 key for OpenSSF Model Signing (model.sig)
    hallmark watch   [--once] [--interval S] [--update]   check installed models against the chain
    hallmark audit   RECEIPT.json --rpc URL --registry 0x…  check a download receipt against the chain
    hallmark recorder verify | export DIR                  check or hand over the device's flight recorder

Exit codes: 0 success, 1 failure, 2 usage error; `verify` and `pull` exit with the verification
outcome (3 tampered, 4 files differ, 5 revoked, 6 unknown model or version, 7 chain unreachable,
8 signer mismatch; `verify` 11 when the files match but the OMS signature beside them, model.sig, is
invalid); `watch` exits 0 all good, 3 something quarantined, 4 update available, 7 chain
unreachable; `login` exits 9 when the server asks to sign in to another domain than its own;
`login`, `publish` and `buy` exit 10 when $HALLMARK_KEYSTORE and $HALLMARK_PRIVATE_KEY are both set
(say which with --keystore, or unset one);
`audit` exits 0 valid, 4 not anchored yet, 5 proof not in the anchored batch, 6 root digest not the
chain's, 7 chain unreachable, 8 version already revoked when served; `recorder` exits 3 when the
log is damaged.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING

from . import __version__
from .console import USAGE, CommandError

if TYPE_CHECKING:
    from .api import ApiError

COMMANDS = ("login", "publish", "buy", "pull", "verify", "device", "keys", "watch", "audit", "recorder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hallmark",
        description="Hallmark: publish, buy, download and verify edge models with on-chain provenance.",
        epilog="Environment: HALLMARK_ENDPOINT, HALLMARK_TOKEN, HALLMARK_CONFIG_DIR, HALLMARK_PRIVATE_KEY, HALLMARK_KEYSTORE, "
        "HALLMARK_KEYSTORE_PASSWORD, HALLMARK_SIGNING_KEY, HALLMARK_RPC_URL, HALLMARK_REGISTRY_ADDRESS. See docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"hallmark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    marketplace = argparse.ArgumentParser(add_help=False)
    marketplace.add_argument("--endpoint", metavar="URL", help="the marketplace (default: $HALLMARK_ENDPOINT, else the last login's)")
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--keystore", metavar="PATH", help="encrypted JSON keystore, which wins over the environment (default: "
                     "$HALLMARK_KEYSTORE or $HALLMARK_PRIVATE_KEY, refused when both are set; password from "
                     "$HALLMARK_KEYSTORE_PASSWORD or a prompt)")
    chain = argparse.ArgumentParser(add_help=False)
    chain.add_argument("--rpc", metavar="URL", help="Ethereum JSON-RPC endpoint (default: $HALLMARK_RPC_URL)")
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("--timeout", type=float, default=3600, metavar="SECONDS", help="give up waiting after this long (default 3600)")

    login = sub.add_parser("login", parents=[marketplace, key], help="sign in with Ethereum and keep the API token")
    login.add_argument("--show-token", action="store_true", help="also print the new token (it is saved either way)")

    publish = sub.add_parser("publish", parents=[marketplace, key, wait], help="publish the files of DIR as a new version")
    publish.add_argument("directory", metavar="DIR")
    publish.add_argument("--model", required=True, metavar="VENDOR/NAME", help="a model you registered already")
    publish.add_argument("--no-wait", action="store_true", help="return once the signature is accepted, before the chain confirms")
    publish.add_argument("--draft", type=int, metavar="ID", help="continue this draft (e.g. one uploaded in the portal) instead of a new one")
    publish.add_argument("--upload-workers", type=int, default=2, metavar="N", help="files uploaded at once (default 2)")
    publish.add_argument("--signing-key", metavar="PEM", help="P-256 key that signs the OMS bundle, model.sig (default: "
                         "$HALLMARK_SIGNING_KEY, else the one `hallmark keys init` made, if any)")

    buy = sub.add_parser("buy", parents=[marketplace, key, chain, wait], help="buy a licence, paid from your key")
    buy.add_argument("repo", metavar="VENDOR/NAME")
    buy.add_argument("--licensee", metavar="0x…", help="the wallet that gets the licence (default: your key's address)")
    buy.add_argument("--seats", type=int, metavar="N", help="seats (devices) to buy, 1 to 10000 (default 1; price x N)")
    buy.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    verify_options = argparse.ArgumentParser(add_help=False)
    verify_options.add_argument("--registry", metavar="0x…", help="the ModelRegistry address (default: $HALLMARK_REGISTRY_ADDRESS)")
    verify_options.add_argument("--json", action="store_true", help="print the verification as JSON")

    pull = sub.add_parser("pull", parents=[marketplace, chain, verify_options], help="download a version and verify it on chain")
    pull.add_argument("repo", metavar="VENDOR/NAME", nargs="?")
    pull.add_argument("--revision", default="main", help="main (default), v<N> or a 40-hex commit id")
    pull.add_argument("--dir", metavar="DIR", help="where the files go (default: ./<name>)")
    pull.add_argument("--no-verify", action="store_true", help="skip the check against the chain (not recommended)")
    pull.add_argument("--workers", type=int, metavar="N", help="parallel connections (default 4, or the number of cores if fewer; at most 32)")
    pull.add_argument("-v", "--verbose", action="store_true", help="a line per file, retry and resume")
    pull.add_argument("--clean", metavar="DIR", help="remove the partial data an interrupted pull into DIR left, and exit")

    verify = sub.add_parser("verify", parents=[marketplace, chain, verify_options], help="check files against the chain")
    verify.add_argument("directory", metavar="DIR")
    verify.add_argument("spec", metavar="MODEL@VERSION", help="0x<model id>@3, 0x<vendor address>/<slug>@v3, or vendor/name@v3 with --endpoint")
    verify.add_argument("--public-key", metavar="PEM", help="the vendor's P-256 public key, to check DIR/model.sig with (default: the "
                        "vendor's keys the marketplace lists; only the one the signed metadata names is used)")

    device = sub.add_parser("device", help="this device's key, its registration and its inventory report")
    device_sub = device.add_subparsers(dest="action", metavar="ACTION", required=True)
    device_sub.add_parser("init", help="make the device key (0600) and print its address")
    register = device_sub.add_parser("register", parents=[marketplace], help="bind this device to your account (your login)")
    register.add_argument("--name", required=True, help="1-64 printable characters")
    show = device_sub.add_parser("show", help="the device's address and registration")
    show.add_argument("--json", action="store_true")
    device_sub.add_parser("report", parents=[marketplace], help="post the signed inventory to the marketplace")

    keys = sub.add_parser("keys", help="your P-256 key for OpenSSF Model Signing bundles (model.sig)")
    keys_sub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    keys_init = keys_sub.add_parser("init", help="make the key (PEM, 0600) and print its public key")
    keys_init.add_argument("--out", metavar="PEM", help="where the private key goes (default: $HALLMARK_SIGNING_KEY, else "
                           "oms-signing-key.pem in the config folder)")
    keys_init.add_argument("--force", action="store_true", help="replace an existing key")
    keys_register = keys_sub.add_parser("register", parents=[marketplace], help="publish the public key with your vendor account")
    keys_register.add_argument("--key", metavar="PEM", help="the private key (default: as for init)")
    keys_register.add_argument("--vendor", metavar="SLUG", help="your vendor slug (default: read from your models)")
    keys_show = keys_sub.add_parser("show", help="print the public key and its sha256")
    keys_show.add_argument("--key", metavar="PEM", help="the private key (default: as for init)")

    watch = sub.add_parser("watch", parents=[chain], help="check installed models against the chain, quarantine what must not run")
    watch.add_argument("--registry", metavar="0x…", help="the ModelRegistry address (default: $HALLMARK_REGISTRY_ADDRESS, else the one `pull` saw)")
    watch.add_argument("--once", action="store_true", help="one poll, then exit with its code")
    watch.add_argument("--interval", type=float, default=60, metavar="S", help="seconds between polls without --once (default 60)")
    watch.add_argument("--update", action="store_true", help="install a newer version once it verifies on chain")
    watch.add_argument("--verify-files", action="store_true", help="re-hash every file (default: only files whose size or mtime changed)")
    watch.add_argument("--json", action="store_true", help="print each poll as JSON")

    audit = sub.add_parser("audit", parents=[chain], help="check a download receipt and its proof against the chain")
    audit.add_argument("receipt", metavar="RECEIPT.json", help="GET /api/v1/receipts/<id>'s answer (receipt, batch, proof), or a bare receipt with --proof")
    audit.add_argument("--registry", metavar="0x…", help="the ModelRegistry address (default: $HALLMARK_REGISTRY_ADDRESS)")
    audit.add_argument("--proof", metavar="FILE", help="take the batch and proof from this JSON (e.g. the API answer) instead of RECEIPT.json")
    audit.add_argument("--from-block", type=int, default=0, metavar="N", help="look for revocations from this block (default 0)")
    audit.add_argument("--json", action="store_true", help="print the audit as JSON")

    rec = sub.add_parser("recorder", help="the device's flight recorder: verify it, export it for an auditor")
    rec_sub = rec.add_subparsers(dest="action", metavar="ACTION", required=True)
    rec_verify = rec_sub.add_parser("verify", help="check the hash chain; names the first edited, removed or reordered line")
    rec_verify.add_argument("--log", metavar="PATH", help="a log to check (default: the one in the config folder), e.g. an export's")
    rec_verify.add_argument("--expect-head", metavar="0x…", help="a head hash noted earlier that must still be in the log")
    rec_verify.add_argument("--json", action="store_true")
    rec_export = rec_sub.add_parser("export", help="write the log, its receipts and a README for an auditor into DIR")
    rec_export.add_argument("directory", metavar="DIR", help="a new or empty folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .api import ApiError

    command = importlib.import_module(f".commands.{args.command}", __package__)
    try:
        return command.run(args)
    except CommandError as exc:
        prefix = f"hallmark {args.command}: error: " if exc.exit_code == USAGE else "error: "
        print(prefix + str(exc), file=sys.stderr)
        return exc.exit_code
    except ApiError as exc:
        print(f"error: {_with_remedy(exc, args)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _with_remedy(exc: ApiError, args: argparse.Namespace) -> str:
    """The server's error, with what to do when it is about the CLI's own state: a saved API
    token the marketplace no longer knows (revoked, expired, or its data reset by
    `make clean-data`) is replaced by signing in again, which the server cannot know to say."""
    if exc.status != 401 or exc.code not in ("invalid_token", "token_expired") or "device token" in exc.message:
        return str(exc)
    what = exc.message.removesuffix("; create a new one")
    given = getattr(args, "endpoint", None)
    login = f"hallmark login --endpoint {given}" if given else "hallmark login"
    if os.environ.get("HALLMARK_TOKEN"):
        return f"{what} [{exc.code}]: the token is $HALLMARK_TOKEN's; set a valid one, or `unset HALLMARK_TOKEN` and run `{login}`"
    return f"{what} [{exc.code}]: run `{login}` to sign in again and save a new token"


if __name__ == "__main__":
    sys.exit(main())
