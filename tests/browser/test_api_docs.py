"""The API docs page (/api/docs/) in Chromium under the site's strict Content-Security-Policy: Swagger
UI starts from static files only (no inline script or style, nothing from another host) and lists
the API's operations."""

import pytest

from .conftest import DESKTOP, PHONE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_api_docs_list_the_operations_without_csp_violations(live_server, open_page, viewport_name):
    page = open_page(viewport=DESKTOP if viewport_name == "desktop" else PHONE)
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(live_server.url) and not request.url.startswith("data:") else None)

    response = page.goto(f"{live_server.url}/api/docs/")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp

    # Swagger UI rendered the schema: operations of several tags, each with its method and path
    purchases = page.locator(".opblock-summary-path[data-path='/api/v1/purchases']").first
    purchases.wait_for(timeout=30_000)
    assert purchases.is_visible()
    assert page.locator(".opblock-summary-path[data-path='/api/v1/models']").first.is_visible()
    assert page.locator(".opblock").count() >= 20
    assert page.locator(".opblock-summary-method", has_text="POST").count() >= 1

    # an operation opens (the UI's own scripts work, not only its first render)
    purchases.click()
    page.locator(".opblock.is-open .opblock-section-header").first.wait_for()

    violations = [line for line in console if "Content Security Policy" in line or "Content-Security-Policy" in line]
    assert not violations, f"CSP violations reported in the console: {violations}"
    assert not outside, f"the page fetched from another host: {outside}"
    page.errors.check()
