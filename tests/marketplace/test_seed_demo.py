"""`seed_demo --json`: idempotent, through the real services, and its tokens work as printed."""

import hashlib
import io
import json

import pytest
import requests
from django.core.management import call_command

from marketplace.models import Model, Version

pytestmark = pytest.mark.django_db(transaction=True)


def seed(settings, live_server) -> dict:
    settings.PUBLIC_BASE_URL = live_server.url
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_seed_demo_prints_a_working_demo_and_is_idempotent(chain, settings, live_server):
    first = seed(settings, live_server)
    for key in ("endpoint", "repo_id", "revision", "files", "licensed_token", "unlicensed_token", "rpc_url", "chain_id", "registry_address", "model_id", "version", "vendor_token", "vendor_address"):
        assert key in first, key
    assert first["chain_id"] == 31337 and first["version"] == 1 and first["model_id"].startswith("0x")
    [demo_file] = first["files"]

    url = f"{first['endpoint']}/{first['repo_id']}/resolve/{first['revision']}/{demo_file['path']}"
    licensed = requests.get(url, headers={"Authorization": f"Bearer {first['licensed_token']}"})
    assert licensed.status_code == 200
    assert hashlib.sha256(licensed.content).hexdigest() == demo_file["sha256"] and len(licensed.content) == demo_file["size"]
    unlicensed = requests.get(url, headers={"Authorization": f"Bearer {first['unlicensed_token']}"})
    assert unlicensed.status_code == 403 and unlicensed.json()["code"] == "GatedRepo"

    second = seed(settings, live_server)
    assert (second["model_id"], second["version"], second["files"]) == (first["model_id"], first["version"], first["files"])
    assert Model.objects.count() == 1 and Version.objects.count() == 1
    assert requests.get(url, headers={"Authorization": f"Bearer {second['licensed_token']}"}).status_code == 200


def test_seed_demo_refuses_a_public_chain(settings):
    from django.core.management.base import CommandError

    settings.CHAIN_ID = 11155111
    with pytest.raises(CommandError, match="31337"):
        call_command("seed_demo", "--json")
