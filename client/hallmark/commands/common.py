"""Helpers the subcommands share: the endpoint and token, repo ids, what is left out of hashing."""

from __future__ import annotations

import argparse
import re

from .. import config
from ..api import Api
from ..console import CommandError, usage
from ..manifest import TOOL_STATE_FOLDERS

# tool state kept inside a model folder: ours (`hallmark pull`) and huggingface_hub's (local_dir)
STATE_FOLDERS = TOOL_STATE_FOLDERS

REPO_ID = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)$")


def endpoint(args: argparse.Namespace) -> str:
    url = config.default_endpoint(getattr(args, "endpoint", None))
    if not url:
        raise usage("which marketplace? pass --endpoint URL or set HALLMARK_ENDPOINT (or run `hallmark login --endpoint URL`)")
    return url


def api(args: argparse.Namespace, *, token_required: bool = False) -> Api:
    url = endpoint(args)
    token = config.token_for(url)
    if token_required and not token:
        raise CommandError(f"no API token for {url}: run `hallmark login --endpoint {url}` first (or set HALLMARK_TOKEN)")
    return Api(url, token)


def repo_id(text: str) -> tuple[str, str]:
    match = REPO_ID.match(text or "")
    if not match:
        raise usage(f"{text!r} is not a repository id: write <vendor>/<model>, e.g. hallmark-demo/tiny-llama-gguf")
    return match.group(1), match.group(2)
