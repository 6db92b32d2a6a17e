"""Model cards: Markdown with YAML front matter (read with huggingface_hub.ModelCard), rendered
to HTML that cannot carry scripts (nh3 allow-list sanitising after Markdown)."""

from __future__ import annotations

import markdown
import nh3
from huggingface_hub import ModelCard
from huggingface_hub.repocard import REGEX_YAML_BLOCK

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "li", "ol", "p", "pre", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"align"}, "td": {"align"}}


def has_front_matter(text: str) -> bool:
    """Whether the card opens with a YAML block, as huggingface_hub finds it (its own pattern).

    ModelCard logs a warning ("Repo card metadata block was not found") for every card without
    one, which is a normal card here: only cards that have a block are given to it."""
    return REGEX_YAML_BLOCK.search(text) is not None


def card_front_matter(text: str) -> dict:
    """The card's YAML front matter (license, base_model, tags, ...); {} when there is none."""
    if not has_front_matter(text):
        return {}
    try:
        data = ModelCard(text, ignore_metadata_errors=True).data.to_dict()
    except Exception:  # a card with broken YAML still renders; its metadata is just unknown
        return {}
    return {k: v for k, v in data.items() if v is not None}


def card_body(text: str) -> str:
    """The card's Markdown without its front matter."""
    if not has_front_matter(text):
        return text
    try:
        return ModelCard(text, ignore_metadata_errors=True).text
    except Exception:
        return text


def render_card(text: str) -> str:
    """Safe HTML of the card's Markdown body: no script, no event handler, no javascript: URL."""
    html = markdown.markdown(card_body(text), extensions=["tables", "fenced_code"], output_format="html")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
