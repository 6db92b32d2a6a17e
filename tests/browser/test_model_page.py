"""The model page in Chromium: its curl example downloads the model's weights (not the README)
through the live server, following the S3 redirect; at phone width (390 px) nothing runs off the
screen, code blocks scroll inside their box and file names wrap only between words."""

import hashlib
import subprocess

import pytest

from marketplace.models import Download
from tests.conftest import publish, purchase
from tests.marketplace.test_s3_storage import s3  # noqa: F401  (the fixture: a local moto S3 bucket)

from .conftest import DESKTOP, PHONE

pytestmark = pytest.mark.django_db(transaction=True)

LONG_NAME = "tokenizer/tiny-llama-chat-tokenizer-vocabulary.json"


def model_files(gguf_file) -> dict[str, bytes]:
    """A model as vendors ship it: the README is the largest file and sorts first; the weights are not."""
    return {
        "README.md": b"# Tiny\n\n" + b"A tiny llama for phones. " * 12_000,
        "config.json": b'{"architecture": "llama"}',
        LONG_NAME: b'{"vocab": []}',
        "model.gguf": gguf_file.read_bytes(),
    }


def test_the_curl_example_downloads_the_weights_through_the_s3_redirect(s3, chain, live_server, make_party, gguf_file, open_page, tmp_path):  # noqa: F811
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    files = model_files(gguf_file)
    assert len(files["README.md"]) > len(files["model.gguf"])
    version = publish(vendor, "tiny", files)
    buyer = make_party("buyer", chain.keys[2])
    purchase(chain, version.model.chain_model_id, buyer.key)

    page = open_page(viewport=DESKTOP)
    page.goto(f"{live_server.url}/acme/tiny")
    command = page.locator("code.download-curl").inner_text()
    assert command.startswith("curl -L ")
    assert f"{live_server.url}/acme/tiny/resolve/main/model.gguf" in command and "README" not in command

    # the command as a user pastes it, with their token: curl follows the 302 to the presigned S3 URL
    pasted = command.replace("hm_…", buyer.token)
    done = subprocess.run(["bash", "-c", pasted], cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256((tmp_path / "model.gguf").read_bytes()).hexdigest() == hashlib.sha256(files["model.gguf"]).hexdigest()
    assert Download.objects.filter(user=buyer.user, method="GET", status_code=302).exists()  # sent by S3, not by us

    # without -L curl saves the redirect's empty body: the flag is what makes the example work on S3
    without = tmp_path / "without-L"
    without.mkdir()
    subprocess.run(["bash", "-c", pasted.replace("curl -L ", "curl ")], cwd=without, capture_output=True, timeout=60, check=True)
    assert (without / "model.gguf").read_bytes() != files["model.gguf"]
    page.errors.check()


# every element reaching past the viewport's right edge must be inside a box that scrolls and itself
# fits (the skip link waits off the left edge on purpose)
OVERFLOWING = """() => {
  const width = window.innerWidth;
  const clipped = (el) => {
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      const style = getComputedStyle(box);
      if (["auto", "scroll", "hidden", "clip"].includes(style.overflowX)) {
        const rect = box.getBoundingClientRect();
        return rect.left >= -0.5 && rect.right <= width + 0.5;
      }
    }
    return false;
  };
  return [...document.body.querySelectorAll("*")].filter((el) => {
    const rect = el.getBoundingClientRect();
    return rect.width > 0 && rect.right > width + 0.5 && !clipped(el);
  }).map((el) => `${el.tagName.toLowerCase()}.${el.className} (right edge ${Math.round(el.getBoundingClientRect().right)})`);
}"""

# where each file name's lines break: the character before every break
LINE_BREAKS = """(el) => {
  const text = el.firstChild;
  const range = document.createRange();
  const breaks = [];
  let top = null;
  for (let i = 0; i < text.length; i += 1) {
    range.setStart(text, i);
    range.setEnd(text, i + 1);
    const rect = range.getBoundingClientRect();
    if (top !== null && rect.top > top + 1) breaks.push(text.data.slice(0, i));
    top = rect.top;
  }
  return { breaks, wordBreak: getComputedStyle(el).wordBreak, lines: el.getClientRects().length };
}"""


def test_the_model_page_fits_a_phone_with_whole_file_names_and_scrolling_code(chain, live_server, make_party, gguf_file, open_page):
    vendor = make_party("vendor", chain.keys[1], vendor_slug="acme")
    publish(vendor, "tiny", model_files(gguf_file), description="A tiny llama for phones.")
    page = open_page(viewport=PHONE)
    page.goto(f"{live_server.url}/acme/tiny")

    assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert page.evaluate(OVERFLOWING) == []

    # code blocks: inside the viewport, and a line longer than the box scrolls sideways in it
    blocks = page.locator("pre:visible")
    assert blocks.count() >= 2
    for i in range(blocks.count()):
        box = blocks.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"code block {i} runs off the screen"
    curl = page.locator("pre", has=page.locator("code.download-curl"))
    sizes = curl.evaluate("(el) => ({ scroll: el.scrollWidth, client: el.clientWidth, overflowX: getComputedStyle(el).overflowX })")
    assert sizes["scroll"] > sizes["client"], "the curl URL is expected to be wider than a phone"
    assert sizes["overflowX"] in ("auto", "scroll")
    assert curl.evaluate("(el) => { el.scrollLeft = 80; return el.scrollLeft; }") > 0, "the code block does not scroll"

    # file names: whole words on a line; a long path may wrap only after "/" or "-"
    names = page.locator("code.file-path")
    assert sorted(names.all_inner_texts()) == sorted(["README.md", "config.json", LONG_NAME, "model.gguf"])
    broken = []
    for i in range(names.count()):
        name = names.nth(i).inner_text()
        layout = names.nth(i).evaluate(LINE_BREAKS)
        broken += [f"{name!r} breaks after {before!r}" for before in layout["breaks"] if before[-1] not in "/-"]
        if layout["wordBreak"] == "break-all":
            broken.append(f"{name!r} may break anywhere (word-break: break-all)")
    assert not broken, broken
    page.errors.check()
