"""`hallmark device init | register --name NAME | show | report`: this device's own key, its
registration with a fleet owner's account, and its signed inventory report (docs/fleet.md)."""

from __future__ import annotations

import argparse
import json
import re

from .. import config, device, inventory
from ..api import ApiError
from ..console import CommandError, say, usage
from .common import api, endpoint

NAME = re.compile(r"^[\x20-\x7e]{1,64}$")


def run(args: argparse.Namespace) -> int:
    action = {"init": _init, "register": _register, "show": _show, "report": _report}[args.action]
    return action(args)


def _init(args: argparse.Namespace) -> int:
    account = device.create_key()
    say(f"device key written to {config.config_dir() / device.KEY_FILE} (mode 0600)")
    say(f"address: {account.address}")
    return 0


def _register(args: argparse.Namespace) -> int:
    name = (args.name or "").strip()
    if not NAME.match(name):
        raise usage("--name: 1 to 64 printable characters")
    account = device.load_key()
    owner = api(args, token_required=True)  # the fleet owner's login, never a device token
    registered = device.register(owner, account, name)
    say(f"registered {account.address} as {registered.get('name', name)!r} with {owner.endpoint}")
    return 0


def _show(args: argparse.Namespace) -> int:
    account = device.load_key()
    data = device.state()
    token = data.get("token") or {}
    shown = {
        "address": account.address, "registered_with": data.get("endpoint"), "name": data.get("name"),
        "registered_at": data.get("registered_at"), "token_expires_at": token.get("expires_at"),
        "installed": len(inventory.installed(inventory.load())),
    }
    if args.json:
        say(json.dumps(shown, indent=2))
        return 0
    for label, value in shown.items():
        say(f"{label:<16} {value if value is not None else '-'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    url = device.state().get("endpoint") or endpoint(args)
    account = device.load_key()
    body = inventory.report_body(inventory.load(), account.address)
    try:
        answer = device.report(url, body)
    except ApiError as exc:
        raise CommandError(f"the report was not accepted: {exc}") from None
    say(f"reported {len(body['models'])} model(s) to {url}")
    for key in ("outdated", "revoked"):
        items = answer.get(key) if isinstance(answer, dict) else None
        if items:
            say(f"  {key}: {json.dumps(items)[:500]}")
    return 0
