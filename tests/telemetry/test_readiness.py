"""`/healthz` and `/readyz` against the real dependencies: readiness turns 503 when the chain,
the database or the broker goes away and 200 when it is back; an unfunded relayer only
degrades it; the answer names no URL, host or port."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client

from registry import chain as chain_module
from tests.conftest import free_port, reset_chain_caches

pytestmark = [pytest.mark.chain]


def ready(client=None):
    response = (client or Client()).get("/readyz")
    return response.status_code, response.json(), response.content.decode()


def states(body) -> dict[str, str]:
    return {name: check["status"] for name, check in body["checks"].items()}


@pytest.mark.django_db
def test_ready_when_everything_answers(chain):
    status, body, _ = ready()
    assert status == 200
    assert body["status"] == "ok"
    assert states(body) == {"database": "ok", "broker": "ok", "chain": "ok", "registry": "ok", "relayer": "ok"}
    for check in body["checks"].values():
        assert check["latency_ms"] >= 0


@pytest.mark.django_db
def test_healthz_touches_nothing(chain_down, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert Client().post("/healthz").status_code == 405


@pytest.mark.django_db
def test_not_ready_while_the_chain_is_away_and_ready_when_it_is_back(chain, settings):
    url = chain.rpc_url
    away = f"http://127.0.0.1:{free_port()}"
    settings.CHAIN_RPC_URL = away
    reset_chain_caches()
    status, body, text = ready()
    assert status == 503
    assert body["status"] == "fail"
    assert states(body)["chain"] == "fail"
    assert states(body)["registry"] == "fail"
    assert states(body)["database"] == "ok"
    assert away.split(":")[-1] not in text and "127.0.0.1" not in text and "http" not in text
    settings.CHAIN_RPC_URL = url
    reset_chain_caches()
    status, body, _ = ready()
    assert status == 200, body


@pytest.mark.django_db
def test_a_chain_with_another_id_is_not_ready(chain, settings):
    settings.CHAIN_ID = 1
    status, body, _ = ready()
    assert status == 503
    assert body["checks"]["chain"]["detail"] == "the chain RPC serves chain id 31337, but CHAIN_ID is 1"


@pytest.mark.django_db
def test_no_contract_at_the_registry_address_is_not_ready(chain, settings):
    settings.REGISTRY_ADDRESS = "0x000000000000000000000000000000000000dEaD"
    status, body, _ = ready()
    assert status == 503
    assert states(body)["registry"] == "fail"
    assert states(body)["chain"] == "ok"


@pytest.mark.django_db
def test_not_ready_while_the_broker_is_away(chain, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    status, body, text = ready()
    assert status == 503
    assert states(body)["broker"] == "fail"
    assert "redis" not in text


@pytest.mark.django_db(transaction=True)
def test_not_ready_while_the_database_is_away_and_ready_when_it_is_back(chain):
    """The database connection is pointed at a port where nothing listens (as when PostgreSQL
    stops: connections are refused), then back."""
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        status, body, text = ready()
        assert status == 503
        assert states(body)["database"] == "fail"
        assert body["checks"]["database"]["detail"] == "the database does not answer"
        assert "5432" not in text and "postgres" not in text.lower()
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    status, body, _ = ready()
    assert status == 200, body
    assert states(body)["database"] == "ok"


@pytest.mark.django_db
def test_an_unfunded_relayer_degrades_readiness_without_failing_it(chain):
    address = chain_module.relayer_account().address
    balance = chain.rpc("eth_getBalance", [address, "latest"])
    cache.clear()
    try:
        chain.rpc("anvil_setBalance", [address, hex(10**9)])
        status, body, _ = ready()
        assert status == 200
        assert body["status"] == "degraded"
        assert states(body)["relayer"] == "degraded"
        assert "fund the relayer" in body["checks"]["relayer"]["detail"]
    finally:
        chain.rpc("anvil_setBalance", [address, balance])
        cache.clear()
    status, body, _ = ready()
    assert body["status"] == "ok"


@pytest.mark.django_db
def test_readiness_is_kept_briefly(chain, settings):
    """A flood of probes does not reach the dependencies: the answer is kept for a moment."""
    from registry import health

    settings.READINESS_CACHE_SECONDS = 60
    first = health.readiness(fresh=True)
    settings.CHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    reset_chain_caches()
    assert health.readiness() is first
    assert health.readiness(fresh=True).status == "fail"
