"""The catalog in a real browser at desktop and phone width: search, filter, sort and page with
the plain GET form (no script needed), no script errors, no sideways scrolling."""

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bench.catalog_page import write_catalog

from .conftest import DESKTOP, PHONE

pytestmark = pytest.mark.django_db(transaction=True)


def check_layout(page, where: str):
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{where} scrolls sideways by {overflow}px"
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(el => !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.name || el.id)"""
    )
    assert not unlabeled, f"{where}: form fields without a label: {unlabeled}"


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_search_filter_sort_and_page_through_the_catalog(live_server, open_page, tmp_path, viewport_name):
    write_catalog(models=60, vendors=4, prefix="shop", seed=21)
    page = open_page(viewport=DESKTOP if viewport_name == "desktop" else PHONE)
    base = live_server.url

    page.goto(base + "/")
    assert page.locator(".catalog-card").count() == 24
    check_layout(page, f"the catalog at {viewport_name} width")

    page.get_by_label("Search", exact=True).fill("llama")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/models?*q=llama*")
    titles = page.locator(".catalog-card h3").all_inner_texts()
    assert titles and all("llama" in t.lower() for t in titles)

    page.get_by_label("Format").select_option("gguf")
    page.get_by_label("Sort by").select_option("-price")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**ordering=-price*")
    query = parse_qs(urlparse(page.url).query)
    assert query["q"] == ["llama"] and query["format"] == ["gguf"] and query["ordering"] == ["-price"]
    cards = page.locator(".catalog-card")
    assert cards.count() >= 1
    assert all("gguf" in text for text in cards.locator(".catalog-facts").all_inner_texts())
    assert page.get_by_label("Search", exact=True).input_value() == "llama"  # the form shows the filters applied
    check_layout(page, f"the filtered catalog at {viewport_name} width")
    # beside the other pages' screenshots (`make screenshots` points SCREENSHOT_DIR at docs/screenshots/)
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"catalog-filtered-{viewport_name}.png"), full_page=True)

    # a bad value: a visible error beside its field, the page still renders
    page.get_by_label("Min parameters").fill("3000000000")
    page.get_by_label("Max parameters").fill("1000000000")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**max_parameters=1000000000*")
    assert page.locator(".field-error").first.inner_text() == "The maximum parameter count is below the minimum."
    check_layout(page, f"the catalog with a form error at {viewport_name} width")

    # every model, cheapest first, then the next page keeps the sorting
    page.goto(base + "/models?ordering=price")
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url("**page=2*")
    assert parse_qs(urlparse(page.url).query)["ordering"] == ["price"]
    assert page.locator(".catalog-card").count() == 24
    check_layout(page, f"page 2 at {viewport_name} width")
    page.errors.check()
