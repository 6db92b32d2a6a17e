"""The alert rules and the dashboard in deploy/ refer to what the application really exports.

An alert on a misspelt metric never fires, and nothing says so: Prometheus evaluates it to an
empty result forever. So every expression is parsed (promql-parser) and every `hallmark_*` name
in it is checked against the families a real `/metrics` scrape returns, with the sample suffix
its type gives (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms). Every rule
must also point to its own section of docs/operations.md, the runbook the operator reads."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from registry.indexer import indexer_run

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hallmark.json"
OPERATIONS = ROOT / "docs" / "operations.md"

RULE_FIELDS = ("alert", "expr", "for", "labels", "annotations")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RUNBOOK = re.compile(r"^docs/operations\.md#([a-z0-9-]+)$")
# Grafana's variables, replaced by what Grafana would put there before the text is PromQL
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "unknown": ("",)}


def load_rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((inner["title"], expr))
    return found


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def doc_anchors() -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in OPERATIONS.read_text().splitlines() if re.match(r"^#{1,6} ", line)}


def selectors(expr: str) -> list[tuple[str, set[str], set[str]]]:
    """(metric name, label names matched, label names aggregated `by`) of each selector."""
    tree = promql_parser.parse(expr)
    found: list[tuple[str, set[str], set[str]]] = []
    by_stack: list[set[str]] = []

    def enter(node) -> bool:
        if isinstance(node, promql_parser.AggregateExpr):
            modifier = node.modifier
            by = set(modifier.labels) if modifier is not None and str(modifier.type).endswith("By") else set()
            by_stack.append(by)
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), "")
            matched = {m.name for m in matchers if m.name != "__name__"}
            grouped = set().union(*by_stack) if by_stack else set()
            found.append((name, matched, grouped))
        return True

    def leave(node) -> bool:
        if isinstance(node, promql_parser.AggregateExpr):
            by_stack.pop()
        return True

    promql_parser.walk(tree, enter, leave)
    return found


# ------------------------------------------------------------------------------- alert rules


def test_every_alert_rule_is_complete_and_has_its_runbook_section():
    rules = load_rules()
    anchors = doc_anchors()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    assert len(rules) >= 10
    for rule in rules:
        name = rule["alert"]
        for field in RULE_FIELDS:
            assert rule.get(field) not in (None, ""), f"{name}: no {field}"
        assert DURATION.match(str(rule["for"])), f"{name}: `for` is not a duration"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        match = RUNBOOK.match(annotations["runbook_url"])
        assert match, f"{name}: runbook_url must be docs/operations.md#<anchor>"
        assert match.group(1) == github_anchor(name), f"{name}: its runbook is its own section `### {name}`"
        assert match.group(1) in anchors, f"{name}: docs/operations.md has no heading `### {name}`"
        promql_parser.parse(rule["expr"])  # raises on a syntax error


def test_the_alerts_cover_what_the_issue_asks_for():
    exprs = {rule["alert"]: rule["expr"] for rule in load_rules()}
    text = "\n".join(exprs.values())
    for needed in (
        "hallmark_relayer_funded",
        "hallmark_relayer_gas_spent_wei_total",
        "hallmark_indexer_lag_blocks",
        "hallmark_indexer_lag_seconds",
        "hallmark_indexer_skipped_events",
        "hallmark_outbox_oldest_pending_age_seconds",
        "hallmark_ready",
        "hallmark_readiness_check",
        'status=~"5.."',
        "hallmark_celery_queue_length",
        "up{",
    ):
        assert needed in text, f"no alert uses {needed}"
    # the runway divides by the spending rate: a quiet relayer (rate 0) must not alert
    runway = [expr for expr in exprs.values() if "/ max(rate(hallmark_relayer_gas_spent_wei_total" in expr]
    assert runway and all("> 0" in expr for expr in runway)


def test_scrape_config_reads_the_rules_and_keeps_the_token_in_a_file():
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "hallmark")
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer" and "credentials_file" in job["authorization"]
    assert "credentials" not in job["authorization"]
    assert any(path.endswith("alerts.yml") for path in config["rule_files"])


# --------------------------------------------------------------------------------- dashboard


def test_dashboard_is_importable_grafana_json():
    dashboard = load_dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert [item["name"] for item in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    for title, expr in dashboard_exprs(dashboard):
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            raise AssertionError(f"panel {title!r}: {exc}") from exc


# --------------------------------------------------------------- against a real /metrics scrape


@pytest.fixture
def exported(chain, settings, db):
    """The sample names and the label names of each, from a scrape of the real application with
    the chain up, the mirror indexed once and the Redis broker answering."""
    settings.CELERY_BROKER_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    settings.METRICS_ALLOW_LOOPBACK = True
    indexer_run()
    from django.test import Client

    response = Client().get("/metrics")  # REMOTE_ADDR 127.0.0.1, no proxy header
    assert response.status_code == 200, response.status_code
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        names = [family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))]
        for name in names:
            labels[name] = set()  # exists, even before its first sample
        for sample in family.samples:
            if sample.name in names:
                labels[sample.name] |= set(sample.labels)
    return labels


def _references(exprs: list[tuple[str, str]]) -> list[tuple[str, str, set[str], set[str]]]:
    return [(where, name, matched, grouped) for where, expr in exprs for name, matched, grouped in selectors(expr) if name.startswith("hallmark_")]


def _check_against_scrape(exprs: list[tuple[str, str]], exported: dict[str, set[str]]) -> None:
    references = _references(exprs)
    assert references
    for where, name, matched, grouped in references:
        assert name in exported, f"{where}: {name} is not exported by /metrics"
        seen = exported[name]
        if seen:  # a family with samples: the labels used must be its labels
            unknown = (matched | grouped) - seen - {"le"}
            assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"


def test_every_metric_the_alerts_use_is_exported(exported):
    _check_against_scrape([(rule["alert"], rule["expr"]) for rule in load_rules()], exported)


def test_every_metric_the_dashboard_shows_is_exported_and_every_family_is_shown(exported):
    exprs = dashboard_exprs(load_dashboard())
    _check_against_scrape(exprs, exported)
    shown = {name for _, name, _, _ in _references(exprs)}
    # `<counter>_created` is printed as a gauge family of its own: a timestamp, not worth a panel
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exported if name.startswith("hallmark_") and not name.endswith("_created")}
    missing = sorted(family for family in families if not any(re.sub(r"_(total|bucket|sum|count)$", "", name) == family for name in shown))
    assert not missing, f"families exported but on no dashboard panel: {missing}"
