"""Benchmarks (not tests): scripts run as `.venv/bin/python bench/<name>.py`; see docs/benchmarks.md.

A package only so that `bench.settings_bench` and `bench.bare_urls` can be named in
DJANGO_SETTINGS_MODULE for gunicorn."""
