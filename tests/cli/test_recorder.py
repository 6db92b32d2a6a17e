"""The device's flight recorder: a hash-chained JSON-lines log in the CLI's config folder.
`hallmark recorder verify` names the first edited, removed or reordered line; `export` writes
what an auditor needs; `watch` appends its quarantines. Real files, the real console script."""

from __future__ import annotations

import json
import os

import pytest

from hallmark import receipts, recorder
from tests.cli.test_watch import installed, revoke  # noqa: F401 (the fixture `installed` is used by name)
from tests.conftest import publish_version

RECEIPT = {
    "receipt_id": "0x" + "ab" * 32, "model_id": "0x" + "11" * 32, "version": 1, "root_digest": "0x" + "22" * 32,
    "file_sha256": "0x" + "33" * 32, "licensee": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "device": "0x" + "00" * 20,
    "range_start": 0, "range_end": 123, "served_at": 1_700_000_000,
}


@pytest.fixture
def log(cli, monkeypatch):
    """Five lines written through the module into the `cli` fixture's config folder."""
    monkeypatch.setenv("HALLMARK_CONFIG_DIR", str(cli.config))
    pull = recorder.append("pull", {"repo_id": "acme/tiny", "version": 1, "receipts": 1})
    recorder.append("receipt", {"pull_seq": pull["seq"], "receipt": RECEIPT})
    recorder.append("verify", {"model_id": RECEIPT["model_id"], "version": 1, "outcome": "verified"})
    recorder.append("quarantine", {"repo_id": "acme/tiny", "version": 1, "reason": "revoked"})
    recorder.append("update", {"repo_id": "acme/tiny", "from_version": 1, "version": 2})
    return cli.config / recorder.LOG


def lines(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_each_line_is_chained_to_the_one_before_and_the_file_is_private(log):
    records = [json.loads(raw) for raw in lines(log)]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["kind"] for r in records] == ["pull", "receipt", "verify", "quarantine", "update"]
    assert records[0]["prev"] == "0x" + "00" * 32
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev"] == before["hash"]
    for record in records:
        assert record["hash"] == recorder.line_hash(record) and sorted(record) == sorted(recorder.FIELDS)
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert recorder.verify(log).ok and recorder.verify(log).head == records[-1]["hash"]


def test_an_intact_log_verifies(cli, log):
    done = cli.run("recorder", "verify")
    assert done.code == 0, done.text
    head = json.loads(lines(log)[-1])["hash"]
    assert "intact: 5 line(s)" in done.out and head in done.out
    expected = cli.run("recorder", "verify", "--expect-head", json.loads(lines(log)[2])["hash"], "--json")
    assert expected.code == 0 and json.loads(expected.out)["found_expected_head"] is True


def test_an_edited_line_is_refused_with_its_number(cli, log):
    raw = lines(log)
    raw[2] = raw[2].replace(b'"verified"', b'"tampered"')
    log.write_bytes(b"".join(raw))
    done = cli.run("recorder", "verify")
    assert done.code == 3, done.text
    assert "damaged: line 3: edited: its content does not match its hash" in done.out


def test_an_edited_and_rehashed_line_is_caught_by_the_next_line(cli, log):
    raw = lines(log)
    record = json.loads(raw[1])
    record["data"]["receipt"]["licensee"] = "0x" + "99" * 20
    record["hash"] = recorder.line_hash(record)
    raw[1] = recorder.canonical(record) + b"\n"
    log.write_bytes(b"".join(raw))
    done = cli.run("recorder", "verify")
    assert done.code == 3
    assert "line 3: its prev is not line 2's hash" in done.out


def test_a_removed_line_is_refused_with_the_line_where_the_gap_is(cli, log):
    raw = lines(log)
    del raw[1]
    log.write_bytes(b"".join(raw))
    done = cli.run("recorder", "verify", "--json")
    assert done.code == 3
    report = json.loads(done.out)
    assert report["ok"] is False and report["line"] == 2 and report["lines"] == 1
    assert "has seq 3 where 2 was expected: a line was removed before it" in report["problem"]


def test_reordered_lines_are_refused(cli, log):
    raw = lines(log)
    raw[3], raw[4] = raw[4], raw[3]
    log.write_bytes(b"".join(raw))
    done = cli.run("recorder", "verify")
    assert done.code == 3
    assert "line 4: has seq 5 where 4 was expected" in done.out


def test_a_line_truncated_in_the_middle_is_refused(cli, log):
    raw = lines(log)
    raw[2] = raw[2][:40] + b"\n"
    log.write_bytes(b"".join(raw))
    assert "line 3: not JSON" in cli.run("recorder", "verify").out


def test_lines_cut_off_the_end_show_against_a_head_noted_earlier(cli, log):
    head = json.loads(lines(log)[-1])["hash"]
    log.write_bytes(b"".join(lines(log)[:3]))
    assert cli.run("recorder", "verify").code == 0  # a shorter chain is still a chain…
    done = cli.run("recorder", "verify", "--expect-head", head)
    assert done.code == 3  # …but not one that holds the head noted before
    assert f"no line has the hash {head}" in done.out
    assert cli.run("recorder", "verify", "--expect-head", "0x12").code == 2


def test_appending_after_a_cut_short_write_is_refused(log):
    log.write_bytes(log.read_bytes() + b'{"seq": 6, "at"')
    with pytest.raises(recorder.RecorderError, match="unfinished line"):
        recorder.append("verify", {"outcome": "verified"})
    assert "line 6: unfinished" in recorder.verify(log).problem


def test_a_record_over_the_line_limit_is_refused_and_nothing_is_written(log):
    before = log.read_bytes()
    with pytest.raises(recorder.RecorderError, match="over the"):
        recorder.append("verify", {"outcome": "x" * recorder.MAX_LINE})
    assert log.read_bytes() == before


def test_export_writes_the_log_the_receipts_and_a_readme(cli, log, tmp_path):
    # a receipt whose id is not a hex id (it comes from a server header) never becomes a file name
    recorder.append("receipt", {"pull_seq": 1, "receipt": {**RECEIPT, "receipt_id": "../../escape"}})
    dest = tmp_path / "for-the-auditor"
    done = cli.run("recorder", "export", str(dest))
    assert done.code == 0, done.text
    assert "exported 6 line(s) and 1 receipt(s)" in done.out
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "receipts", "recorder.jsonl", "verification.json"]
    assert (dest / "recorder.jsonl").read_bytes() == log.read_bytes()
    assert [p.name for p in (dest / "receipts").iterdir()] == [f"{RECEIPT['receipt_id']}.json"]
    assert json.loads((dest / "receipts" / f"{RECEIPT['receipt_id']}.json").read_text()) == {"receipt": RECEIPT}
    verification = json.loads((dest / "verification.json").read_text())
    assert verification["ok"] is True and verification["lines"] == 6
    readme = (dest / "README.md").read_text()
    assert "hallmark recorder verify --log recorder.jsonl" in readme and "hallmark audit" in readme
    assert verification["head"] in readme and "At export: intact" in readme
    # the export checks on its own: the auditor's copy verifies with --log
    assert cli.run("recorder", "verify", "--log", str(dest / "recorder.jsonl")).code == 0
    # an existing, non-empty folder is never overwritten
    again = cli.run("recorder", "export", str(dest))
    assert again.code == 2 and "is not an empty folder" in again.err


def test_a_damaged_log_is_exported_all_the_same_and_says_so(cli, log, tmp_path):
    raw = lines(log)
    del raw[0]
    log.write_bytes(b"".join(raw))
    dest = tmp_path / "evidence"
    done = cli.run("recorder", "export", str(dest))
    assert done.code == 3
    assert "damaged: line 1: has seq 2 where 1 was expected" in done.out
    assert (dest / "recorder.jsonl").read_bytes() == log.read_bytes()
    assert json.loads((dest / "verification.json").read_text())["line"] == 1
    assert "DAMAGED: line 1" in (dest / "README.md").read_text()


def test_concurrent_appends_never_share_a_seq(log):
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # a child process: 25 appends racing the others, then exit without pytest's cleanup
            try:
                for _ in range(25):
                    recorder.append("verify", {"outcome": "verified", "pid": os.getpid()})
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    check = recorder.verify(log)
    assert check.ok, check.problem
    assert check.lines == 5 + 100


@pytest.mark.django_db(transaction=True)
def test_watch_records_a_quarantine_in_the_flight_recorder(chain, installed, vendor):  # noqa: F811
    revoke(vendor, installed.version)
    watched = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url)
    assert watched.code == 3, watched.text
    log = installed.cli.config / recorder.LOG
    assert recorder.verify(log).ok
    quarantines = [json.loads(raw) for raw in lines(log) if json.loads(raw)["kind"] == "quarantine"]
    assert len(quarantines) == 1
    data = quarantines[0]["data"]
    assert data["repo_id"] == "acme/tiny" and data["version"] == 1 and data["model_id"] == installed.version.model.chain_model_id
    assert "revoked" in data["reason"] and data["to"] == installed.entry()["quarantine_path"]
    assert installed.cli.run("recorder", "verify").code == 0


@pytest.mark.django_db(transaction=True)
def test_watch_records_an_update_it_swapped_in(chain, installed, vendor, gguf_file):  # noqa: F811
    assert installed.cli.run("watch", "--once", "--rpc", chain.rpc_url).code == 0
    v2 = publish_version(vendor, installed.version.model, {"model.gguf": gguf_file.read_bytes(), "NOTES.md": b"v2\n"})
    updated = installed.cli.run("watch", "--once", "--rpc", chain.rpc_url, "--update")
    assert updated.code == 0, updated.text
    log = installed.cli.config / recorder.LOG
    updates = [json.loads(raw)["data"] for raw in lines(log) if json.loads(raw)["kind"] == "update"]
    assert updates == [{
        "repo_id": "acme/tiny", "model_id": v2.model.chain_model_id, "from_version": 1, "version": 2,
        "root_digest": "0x" + v2.root_digest, "directory": str(installed.folder.resolve()),
    }]
    assert recorder.verify(log).ok


def test_record_pull_keeps_the_receipts_the_downloads_carried(log, tmp_path):
    good = [receipts.Receipt.from_json({**RECEIPT, "receipt_id": "0x" + f"{i:02x}" * 32, "range_start": i}) for i in (1, 2)]
    headers = [receipts.encode_header(r) for r in good] + ["not base64 at all!", "A" * 5000]
    pull = recorder.record_pull(
        repo_id="acme/tiny", model_id=RECEIPT["model_id"], version=1, root_digest=RECEIPT["root_digest"],
        directory=tmp_path / "tiny", receipt_headers=headers, endpoint="https://user:secret@market.example:8443/base?token=x",
    )
    assert pull["seq"] == 6 and pull["data"]["receipts"] == 2 and pull["data"]["invalid_receipts"] == 2
    assert pull["data"]["endpoint"] == "https://market.example:8443/base"  # no credentials kept
    written = [json.loads(raw) for raw in lines(log)][6:]
    assert [r["kind"] for r in written] == ["receipt", "receipt"]
    assert [r["data"] for r in written] == [{"pull_seq": 6, "receipt": r.to_json()} for r in good]
    assert recorder.verify(log).ok
    check, count = recorder.export(tmp_path / "out", log)
    assert check.ok and count == 3  # the two and the one the fixture wrote
