"""`hallmark recorder verify [--log PATH] [--expect-head 0x…]` and `hallmark recorder export DIR`:
check the device's flight recorder (hallmark.recorder has the format) and hand it to an auditor.

Exit codes: 0 the log is intact (export: and was written), 3 the log is damaged (the first
damaged line is named; export still writes everything, the damage is evidence), 1 the log or the
folder cannot be read or written, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import recorder
from ..console import CommandError, say, usage

DAMAGED = 3


def run(args: argparse.Namespace) -> int:
    if args.action == "verify":
        return _verify(args)
    return _export(args)


def _verify(args: argparse.Namespace) -> int:
    expect = args.expect_head
    if expect is not None and not recorder.HASH.match(expect.lower()):
        raise usage(f"--expect-head: {expect!r} is not a line hash (0x and 64 hex digits)")
    path = Path(args.log) if args.log else recorder.log_path()
    if args.log and not path.is_file():
        raise usage(f"{path} is not a file")
    try:
        check = recorder.verify(path, expect=expect.lower() if expect else None)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    if args.json:
        say(json.dumps({"log": str(path), **check.as_dict()}, indent=2))
    elif check.ok:
        say(f"intact: {check.lines} line(s) in {path}")
        say(f"  head {check.head}")
        if expect:
            say(f"  contains the expected head {expect.lower()}")
    else:
        say(f"damaged: {check.problem}")
        say(f"  {check.lines} line(s) before it check out; the last good hash is {check.head}")
    return 0 if check.ok else DAMAGED


def _export(args: argparse.Namespace) -> int:
    dest = Path(args.directory)
    try:
        check, count = recorder.export(dest)
    except recorder.RecorderError as exc:
        raise usage(str(exc)) from None
    say(f"exported {check.lines} line(s) and {count} receipt(s) to {dest} (README.md says how to check them)")
    if not check.ok:
        say(f"damaged: {check.problem}")
        return DAMAGED
    say(f"  head {check.head}")
    return 0
