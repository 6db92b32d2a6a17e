"""The catalog page (`/` and `/models`): the same selector and filters as `GET /api/v1/models`,
cards with the mirror's facts, sorting, pages that keep the filters, form errors for bad input,
and a query count that does not grow with the catalog."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.catalog_page import write_catalog
from marketplace.models import Model, Version

pytestmark = pytest.mark.django_db

CARD = re.compile(rb'<li class="catalog-card">.*?</li>', re.S)
REPO = re.compile(rb'<p class="catalog-repo muted">([^<\s]+)')


@pytest.fixture
def catalog():
    return write_catalog(models=30, vendors=3, prefix="cat")


def size_shown(card: str, size: int) -> bool:
    from django.template.defaultfilters import filesizeformat

    text = str(filesizeformat(size))
    return text in card or text.replace("\xa0", "&nbsp;") in card


def repos(response) -> list[str]:
    assert response.status_code == 200
    return [r.decode() for r in REPO.findall(response.content)]


def api_repos(client, query: dict) -> list[str]:
    response = client.get("/api/v1/models", {**query, "page_size": 24})
    assert response.status_code == 200, response.content
    return [m["repo_id"] for m in response.json()["results"]]


def test_home_and_models_show_the_first_page_of_24_cards(client, catalog):
    home, models = client.get("/"), client.get("/models")
    assert len(CARD.findall(home.content)) == 24
    assert repos(home) == repos(models) == api_repos(client, {})
    assert b"30 models, page 1 of 2" in home.content
    second = client.get("/models", {"page": 2})
    assert len(CARD.findall(second.content)) == 6


def test_a_card_shows_the_facts_of_a_real_published_model_and_its_verified_mark(client, live_version):
    from marketplace.selectors import version_files

    response = client.get("/models")
    card = CARD.findall(response.content)[0].decode()
    model = live_version.model
    assert "acme/tiny · v1" in card
    assert "Verified on chain" in card
    assert model.vendor.slug in card
    assert "gguf" in card
    assert "0.001 ETH" in card
    assert "<dd>Perpetual</dd>" in card
    size = sum(a.size for a in version_files(version=live_version))
    assert size > 0
    assert size_shown(card, size)


def test_cards_show_parameters_size_price_and_licence_from_the_mirror(client, catalog):
    model = catalog[1]
    Model.objects.filter(pk=model.pk).update(
        parameter_count=1_100_000_000, price_wei=12_500_000_000_000_000, license_duration=30 * 86400, name="Needle", slug="needle",
    )
    version = Version.objects.get(model=model)
    total = sum(a.size for a in version.artifacts.all())
    card = CARD.findall(client.get("/models", {"q": "needle"}).content)[0].decode()
    assert "Needle" in card and "1.1B" in card and "0.0125 ETH" in card and "<dd>30 days</dd>" in card
    assert size_shown(card, total)
    assert "Verified on chain" in card


def test_a_version_signed_by_another_key_or_revoked_is_not_verified(client, catalog):
    other_signed = catalog[0]  # write_catalog signs every 20th model with another key
    revoked = catalog[2]
    Version.objects.filter(model=revoked).update(revoked=True)
    for model in (other_signed, revoked):
        card = CARD.findall(client.get("/models", {"q": model.slug}).content)[0].decode()
        assert "Not verified" in card and "Verified on chain" not in card


def test_a_file_the_signed_manifest_does_not_name_is_not_counted_in_the_size(client, catalog):
    from marketplace.models import Artifact

    model = catalog[3]
    version = Version.objects.get(model=model)
    signed = sum(a.size for a in version.artifacts.all())
    Artifact.objects.create(version=version, path="extra.bin", storage_name="x", size=10**12, sha256="0" * 64)
    card = CARD.findall(client.get("/models", {"q": model.slug}).content)[0].decode()
    assert size_shown(card, signed)


@pytest.mark.parametrize("query", [
    {"q": "llama"},
    {"format": "gguf"},
    {"format": "onnx", "ordering": "price"},
    {"quantization": "Q4_K_M"},
    {"architecture": "phi3", "ordering": "name"},
    {"min_parameters": "1000000000", "max_parameters": "3000000000", "ordering": "-parameters"},
    {"min_price_wei": str(2 * 10**16), "max_price_wei": str(10**17), "ordering": "-price"},
    {"license": "perpetual"},
    {"license": "timed", "ordering": "oldest"},
    {"vendor": "cat-v1", "format": "safetensors"},
])
def test_each_filter_gives_the_same_models_as_the_api(client, catalog, query):
    page = repos(client.get("/models", query))
    assert page == api_repos(client, query)
    assert page, f"the fixture should match {query}"


def test_sorting_by_price_and_parameters(client, catalog):
    prices = {m.repo_id: m.price_wei for m in Model.objects.select_related("vendor")}
    ascending = [prices[r] for r in repos(client.get("/models", {"ordering": "price"}))]
    assert ascending == sorted(ascending)
    descending = [prices[r] for r in repos(client.get("/models", {"ordering": "-price"}))]
    assert descending == sorted(descending, reverse=True)
    params = {m.repo_id: m.parameter_count for m in Model.objects.select_related("vendor")}
    most = [params[r] for r in repos(client.get("/models", {"ordering": "-parameters"}))]
    assert most == sorted(most, reverse=True)


def test_pagination_links_keep_the_filters(client, catalog):
    write_catalog(models=40, vendors=2, prefix="more", seed=11)
    query = {"format": "gguf", "ordering": "price"}
    total = client.get("/api/v1/models", query).json()["count"]
    first = client.get("/models", query)
    assert total > 24
    assert b'href="?format=gguf&amp;ordering=price&amp;page=2"' in first.content
    second = client.get("/models", {**query, "page": 2})
    assert b'href="?format=gguf&amp;ordering=price&amp;page=1"' in second.content
    api_second = client.get("/api/v1/models", {**query, "page_size": 24, "page": 2}).json()["results"]
    assert repos(second) == [m["repo_id"] for m in api_second]


def test_a_page_number_out_of_range_or_not_a_number_shows_a_page_not_an_error(client, catalog):
    assert repos(client.get("/models", {"page": 99})) == repos(client.get("/models", {"page": 2}))
    assert repos(client.get("/models", {"page": "abc"})) == repos(client.get("/models"))


def test_no_match_shows_the_empty_state_with_a_way_back(client, catalog):
    response = client.get("/models", {"q": "no-such-model-anywhere"})
    assert response.status_code == 200
    assert b"No models match these filters" in response.content
    assert not CARD.findall(response.content)


def test_an_empty_catalog_says_so(client, db):
    response = client.get("/")
    assert response.status_code == 200
    assert b"No models published yet" in response.content


@pytest.mark.parametrize(("query", "message"), [
    ({"min_parameters": "lots"}, b"Enter a whole number."),
    ({"max_parameters": "-5"}, b"greater than or equal to 0"),
    ({"min_parameters": str(2**64)}, b"less than or equal to"),
    ({"min_price_wei": "0.5"}, b"Enter a whole number of wei"),
    ({"max_price_wei": "1" * 79}, b"Enter a whole number of wei"),
    ({"format": "zip"}, b"Select a valid choice"),
    ({"license": "forever"}, b"Select a valid choice"),
    ({"ordering": "random"}, b"Select a valid choice"),
    ({"q": "x" * 201}, b"at most 200 characters"),
    ({"min_parameters": "3000000000", "max_parameters": "1000000000"}, b"The maximum parameter count is below the minimum."),
    ({"min_price_wei": "5", "max_price_wei": "4"}, b"The maximum price is below the minimum."),
])
def test_bad_input_shows_a_form_error_and_the_other_filters_still_apply(client, catalog, query, message):
    response = client.get("/models", {**query, "format": query.get("format", "gguf")})
    assert response.status_code == 200
    assert b'class="field-error"' in response.content
    assert message in response.content
    if "format" not in query:
        assert repos(response) and all(
            ",gguf," in Model.objects.get(slug=r.split("/")[1], vendor__slug=r.split("/")[0]).file_formats for r in repos(response)
        )


def test_the_query_count_of_a_page_of_24_cards_does_not_grow_with_the_catalog(client, catalog, django_assert_max_num_queries):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/models", {"format": "gguf"})
        assert len(CARD.findall(response.content)) >= 1
        return len(captured.captured_queries)

    write_catalog(models=30, vendors=3, prefix="small", seed=3)
    small = queries()
    write_catalog(models=200, vendors=10, prefix="large", seed=5)
    assert len(CARD.findall(client.get("/models").content)) == 24
    with django_assert_max_num_queries(small):
        response = client.get("/models", {"format": "gguf"})
    assert len(CARD.findall(response.content)) == 24
    with django_assert_max_num_queries(7):  # filter choices 2, count 1, page 1, versions 1, files 1 (+1 spare)
        client.get("/models")


def test_the_page_reads_exactly_the_filters_of_the_api():
    from marketplace.api.catalog import ModelListView
    from marketplace.catalog_filters import CatalogFilterForm

    api = ModelListView.FilterSerializer().fields
    form = CatalogFilterForm().fields
    assert set(form) == set(api)
    for name in ("format", "license", "ordering"):
        assert {c for c, _ in form[name].choices if c} == set(api[name].choices)


@pytest.mark.parametrize(("count", "text"), [
    (None, ""), (950, "950"), (135_000_000, "135M"), (1_100_000_000, "1.1B"), (7_000_000_000, "7B"), (3_820_000_000, "3.8B"),
])
def test_parameter_counts_read_as_people_write_them(count, text):
    from marketplace.views import human_count

    assert human_count(count) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "Perpetual"), (3600, "1 hour"), (86400, "24 hours"), (30 * 86400, "30 days")])
def test_licence_lengths(seconds, text):
    from marketplace.views import licence_length

    assert licence_length(seconds) == text
