"""Production settings: DEBUG=0 needs a SECRET_KEY of its own, and `manage.py check --deploy` is
clean with the settings docs/operations.md documents ("Production settings")."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
# the settings this file's tests set, and any the caller's environment may carry
PRODUCTION_NAMES = (
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "TRUSTED_PROXIES",
)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE: the browser tests set it in this process (Playwright's sync loop);
    # a production server never has it, and `check --deploy` rightly refuses it
    dropped = {*PRODUCTION_NAMES, "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    # the timeout only stops a hung process; nothing depends on how long the check takes
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def production_env() -> dict[str, str]:
    """The sample block of docs/operations.md, with a secret made for this test."""
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "hallmark.example.org",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
        "TRUSTED_PROXIES": "10.0.0.0/8",
    }


def test_check_deploy_is_clean_with_the_documented_production_settings():
    env = production_env()
    assert len(env["SECRET_KEY"]) >= 50
    done = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout and "WARNING" not in done.stdout + done.stderr


def test_debug_off_without_a_secret_key_refuses_to_start_and_names_it():
    env = production_env()
    del env["SECRET_KEY"]
    done = manage("check", **env)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "SECRET_KEY must be set" in done.stderr


def test_debug_off_with_the_development_key_refuses_to_start():
    env = production_env()
    env["SECRET_KEY"] = "hallmark-development-only-secret-key-do-not-use-in-production"
    done = manage("check", **env)
    assert done.returncode != 0 and "SECRET_KEY must be set" in done.stderr


@pytest.mark.parametrize("debug", ["0", "1"])
def test_testserver_is_an_allowed_host_only_in_debug(debug):
    env = {"DEBUG": debug, "SECRET_KEY": secrets.token_urlsafe(50)}
    code = "from django.conf import settings; print('testserver' in settings.ALLOWED_HOSTS, settings.SESSION_COOKIE_SECURE)"
    done = manage("shell", "--no-imports", "-c", code, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == (["False", "True"] if debug == "0" else ["True", "False"])
