"""Every relative link in README.md and docs/*.md leads somewhere: the file exists, and a
`#anchor` names a heading of that file (as GitHub makes anchors from headings). A newcomer
follows these links first; issue 21 found the README pointing at a file that was not there."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title" after the target
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...


def prose(text: str) -> str:
    """The text outside code: a link inside a code block or `inline code` is an example."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, `-1`, `-2`
    for repeats."""
    seen: dict[str, int] = {}
    names = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        names.add(slug if count == 0 else f"{slug}-{count}")
    return names


def relative_links(path: Path) -> list[str]:
    text = prose(path.read_text())
    targets = LINK.findall(text) + REFERENCE.findall(text)
    return [target for target in targets if not EXTERNAL.match(target)]


def shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{target}: {shown(destination)} does not exist")
        elif anchor and destination.suffix == ".md" and unquote(anchor).lower() not in anchors(destination):
            broken.append(f"{target}: no heading of {shown(destination)} makes the anchor #{anchor}")
    return broken


def test_the_documents_are_found():
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/quickstart.md", "docs/architecture.md"} <= names
    # the pattern still finds links: the README links to the quickstart and the architecture map
    assert {"docs/quickstart.md", "docs/architecture.md"} <= set(relative_links(ROOT / "README.md"))


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file_and_heading_that_exist(path):
    broken = broken_links(path)
    assert not broken, f"{path.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_a_missing_file_or_heading_is_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Running it: `make run`\n\n## Running it: `make run`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[map](ARCHITECTURE.md), [ok](other.md#running-it-make-run), [second](other.md#running-it-make-run-1),\n"
        "[gone](other.md#nowhere), [here](#page), [web](https://example.org/x.md), `[code](nothing.md)`\n\n"
        "```\n[in a block](missing.md)\n```\n"
    )
    assert broken_links(page) == [
        f"ARCHITECTURE.md: {tmp_path / 'ARCHITECTURE.md'} does not exist",
        f"other.md#nowhere: no heading of {tmp_path / 'other.md'} makes the anchor #nowhere",
    ]
