import pytest


@pytest.fixture(autouse=True)
def _fresh_readiness(settings):
    """Each readiness answer is computed anew (production keeps it READINESS_CACHE_SECONDS), and
    none is left behind for the next test."""
    from registry import health

    settings.READINESS_CACHE_SECONDS = 0
    health._cached = None
    yield
    health._cached = None
