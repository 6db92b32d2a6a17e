"""docs/cli.md's session, pasted as it is into one bash shell against the live test marketplace.

Every ```console block of docs/cli.md is read in order. A line starting with `$ ` is a command;
the lines under it, up to the next command, are what the doc shows it printing, and its
`(exit N)` line (none shown: 0) is the exit code it must have. The commands run one after
another in a single `bash` started at the repository's root (so `source`, `cd`, `export` and
`unset` carry over, as when typed), with `y` on stdin: the answer typed at `hallmark buy`'s question.

Only what differs between `make run` and this test is substituted in the doc's text:

- `http://127.0.0.1:8000` (make run's marketplace) -> the live test server's URL;
- `http://127.0.0.1:8545` (make run's anvil) -> the test session's anvil;
- `0x5FbDB2315678afecb367f032d93F642f64180aa3` (the registry make run deploys first) -> the test
  chain's registry (the same address: both are the first deployment of anvil account #0);
- HOME and TMPDIR point into the test's tmp folder (`~/.config/...`, `mktemp -d`).

The demo is seeded first (`manage.py seed_demo`, what `make seed` runs), so the vendor's
publication is version 2, as in the doc. Lines of the doc's output that do not depend on time,
tokens or transactions (`key:`, `chain:`, `verified:`, `error:`, ...) must be printed as shown.
Set HALLMARK_DOCS_TRANSCRIPT=FILE to keep the real transcript (to refresh the doc's output).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command
from eth_account import Account

from marketplace.models import Model
from registry import chain as chain_module
from registry.chain import to_bytes32
from royalties.models import License

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cli.md"
MARKER = "@@hallmark-docs-session@@"  # ends each command's output, with its exit code
# output lines the doc shows that a run must print as they are (the rest carry tokens, hashes of
# transactions, block numbers, times and temporary paths)
STABLE = re.compile(
    r"^(key: |chain: |registry |verified: |files_differ: |unknown_version: |chain_unavailable: |error: |hallmark verify: error: "
    r"|live: |root digest: |signed in to |  (model|version|vendor|signer|local root|chain root|extra) )"
)
SESSION_SECONDS = 60


@dataclass
class Step:
    command: str
    shown: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        codes = [int(m.group(1)) for line in self.shown if (m := re.fullmatch(r"\(exit (\d+)\)", line))]
        return codes[-1] if codes else 0


def session_steps(text: str, substitutions: dict[str, str]) -> list[Step]:
    for documented, actual in substitutions.items():
        text = text.replace(documented, actual)
    steps: list[Step] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append(Step(line[2:]))
            elif steps and line and not line.startswith("# ---"):
                steps[-1].shown.append(line)
    return steps


def run_in_one_shell(steps: list[Step], env: dict[str, str]) -> list[tuple[int, str]]:
    """Each step's exit code and output (stdout and stderr, interleaved as on a terminal)."""
    script = "".join(f"{step.command}\nprintf '\\n{MARKER} %d\\n' $?\n" for step in steps)
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, input="y\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=SESSION_SECONDS,
    )
    results, output = [], []
    for line in done.stdout.split("\n"):
        if line.startswith(MARKER):
            results.append((int(line.split()[-1]), "\n".join(output).strip("\n")))
            output = []
        else:
            output.append(line)
    return results


def balance(chain, address: str) -> int:
    return int(chain.rpc("eth_getBalance", [address, "latest"]), 16)


def test_the_cli_session_in_the_docs_runs_as_written_and_the_buyer_pays(chain, celery_worker, live_server, tmp_path):
    call_command("seed_demo", stdout=io.StringIO())  # what `make seed` does
    vendor = Account.from_key(chain.keys[1]).address
    buyer = Account.from_key(chain.keys[4]).address
    before = {vendor: balance(chain, vendor), buyer: balance(chain, buyer)}
    model = Model.objects.get(vendor__slug="hallmark-demo", slug="tiny-llama-gguf")
    contract = chain_module.registry_contract()
    raw_id = to_bytes32(model.chain_model_id)
    credit_before = contract.functions.creditOf(vendor).call()

    steps = session_steps(DOC.read_text(), {
        "http://127.0.0.1:8000": live_server.url,
        "http://127.0.0.1:8545": chain.rpc_url,
        "0x5FbDB2315678afecb367f032d93F642f64180aa3": chain.address,
    })
    assert len(steps) > 20 and any(s.command.startswith("hallmark buy") for s in steps)
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALLMARK_", "HF_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
    started = time.monotonic()
    results = run_in_one_shell(steps, env)
    elapsed = time.monotonic() - started

    transcript = "\n".join(f"$ {step.command}\n{out}\n(exit {code})" for step, (code, out) in zip(steps, results, strict=False))
    if os.environ.get("HALLMARK_DOCS_TRANSCRIPT"):
        Path(os.environ["HALLMARK_DOCS_TRANSCRIPT"]).write_text(transcript + "\n")
    assert len(results) == len(steps), transcript
    for step, (code, out) in zip(steps, results, strict=True):
        assert code == step.exit_code, f"$ {step.command}\n{out}\n(exit {code}, the doc says {step.exit_code})"
        printed = out.splitlines()
        for line in step.shown:
            if STABLE.match(line):
                assert line in printed, f"$ {step.command}\nthe doc shows {line!r}; it printed:\n{out}"
    assert elapsed < SESSION_SECONDS, f"the session took {elapsed:.0f} s"

    # the buyer (account #4), not the vendor whose keystore the same shell had set, bought and paid
    price = model.price_wei
    assert contract.functions.licenseExpiry(raw_id, buyer).call() > time.time()
    assert contract.functions.licenseExpiry(raw_id, vendor).call() == 0
    assert License.objects.filter(model_id=model.chain_model_id, licensee=buyer).exists()
    assert before[buyer] - balance(chain, buyer) >= price
    assert balance(chain, vendor) == before[vendor]  # the relayer paid the vendor's publication
    assert contract.functions.creditOf(vendor).call() > credit_before  # the vendor's share, to withdraw
