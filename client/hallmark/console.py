"""What every command shares: its error type (with an exit code) and how it prints."""

from __future__ import annotations

import sys
from decimal import Decimal

USAGE = 2  # the exit code of a usage error, as argparse uses it


class CommandError(Exception):
    """Stops a command: `message` goes to stderr and the process exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def usage(message: str) -> CommandError:
    return CommandError(message, USAGE)


def say(text: str = "") -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def eth(wei: int | str) -> str:
    """Wei as an exact decimal amount of ETH, without trailing zeros."""
    return format((Decimal(int(wei)) / Decimal(10**18)).normalize(), "f")


def confirm(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    if not sys.stdin.isatty():
        print(answer.strip(), flush=True)  # echo a piped answer, so the transcript reads like a terminal
    return answer.strip().lower() in ("y", "yes")
