"""Model cards without YAML front matter are normal cards: they render, have no metadata, and a
model page showing one logs nothing (huggingface_hub's ModelCard would warn "Repo card metadata
block was not found" on every view)."""

import logging

import pytest

from marketplace import services
from marketplace.cards import card_body, card_front_matter, has_front_matter, render_card

pytestmark = pytest.mark.django_db

PLAIN = "# Tiny\n\nA small llama for phones.\n"
WITH_FRONT_MATTER = "---\nlicense: apache-2.0\ntags: [gguf, edge]\n---\n# Tiny\n\nA small llama.\n"


def test_a_card_without_front_matter_has_no_metadata_and_keeps_its_body(caplog):
    caplog.set_level(logging.DEBUG)
    for card in (PLAIN, "", "no heading at all", "text\n---\nnot: front matter\n---\n"):
        assert not has_front_matter(card)
        assert card_front_matter(card) == {}
        assert card_body(card) == card
    assert "<h1>Tiny</h1>" in render_card(PLAIN)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_card_with_front_matter_is_read_by_huggingface_hub():
    assert has_front_matter(WITH_FRONT_MATTER)
    assert card_front_matter(WITH_FRONT_MATTER) == {"license": "apache-2.0", "tags": ["gguf", "edge"]}
    assert card_body(WITH_FRONT_MATTER).strip() == "# Tiny\n\nA small llama."
    html = render_card(WITH_FRONT_MATTER)
    assert "<h1>Tiny</h1>" in html and "apache-2.0" not in html


@pytest.mark.parametrize("card", [PLAIN, ""], ids=["plain-markdown", "empty"])
def test_viewing_a_model_page_whose_card_has_no_front_matter_logs_no_warning(client, live_version, caplog, card):
    services.model_update(model=live_version.model, name="Tiny", description="", card=card)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        page = client.get("/acme/tiny")
    assert page.status_code == 200
    if card:
        assert "A small llama for phones." in page.content.decode()
    warnings = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings
    assert not [r for r in caplog.records if "metadata block" in r.getMessage()]


def test_a_model_page_with_front_matter_shows_its_tags_and_logs_no_warning(client, live_version, caplog):
    services.model_update(model=live_version.model, name="Tiny", description="", card=WITH_FRONT_MATTER)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        page = client.get("/acme/tiny")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<span class="tag">gguf</span>' in html and "Card licence: apache-2.0" in html
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
