"""Bench-only settings: the marketplace's own settings with bench/bare_urls.py as the URLconf
(DJANGO_SETTINGS_MODULE=bench.settings_bench). Everything else comes from config.settings and the
environment, exactly as in production."""

from config.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.bare_urls"
