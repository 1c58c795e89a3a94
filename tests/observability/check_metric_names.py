#!/usr/bin/env python3
"""Checks that alert rules and a Grafana dashboard query only metrics Runway exports.

    check_metric_names.py --rules alerts.yaml --dashboard dashboard.json \\
        (--metrics-doc docs/metrics.md | --exposition metrics.txt)

Every PromQL expression (rules' `expr`; dashboard panels' `targets[].expr`, rows' nested panels
included) is reduced to the metric names it selects, and each name must be allowed by:
  --metrics-doc   the table in docs/metrics.md (first column = name, second = type; a histogram
                  allows name_bucket, name_sum, name_count and not the bare name), or
  --exposition    a Prometheus text exposition (`# TYPE name type` lines and sample names).
`up` is always allowed, and so are the rules file's own `record:` names.

A metric name is an identifier that is not followed by `(` (a function or aggregation), not a
PromQL keyword (and, or, unless, by, without, on, ignoring, group_left, group_right, offset, bool,
inf, nan), not a label name (label matchers `{...}` and by/without/on/ignoring/group_* lists are
dropped), not inside a string, not a number or duration (`5m`, `[...]` ranges and subqueries are
dropped), not a Grafana variable (`$__rate_interval`, `${x}`, `[[x]]`). `{__name__="x"}` names x.

Prints each unknown name with where it was used and exits 1; else prints a count and exits 0.
Exit 2: bad usage or unreadable input. Standard library only, plus PyYAML for the rules file.
"""

import argparse
import json
import re
import sys

ALWAYS_ALLOWED = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SUMMARY_SUFFIXES = ("_sum", "_count")
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan"}

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.S)
NAME_MATCHER_RE = re.compile(r'__name__\s*=\s*"((?:[^"\\]|\\.)*)"|__name__\s*=\s*\'((?:[^\'\\]|\\.)*)\'')
COMMENT_RE = re.compile(r"#[^\n]*")
GRAFANA_VAR_RE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
BRACES_RE = re.compile(r"\{[^{}]*\}")
BRACKETS_RE = re.compile(r"\[[^\[\]]*\]")
LABEL_LIST_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)",
                           re.I)
TOKEN_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*|\d[\w.]*|\.\d[\w.]*|\S")


def metric_names(expr):
    """The metric names a PromQL expression selects (see the module doc)."""
    names = set()
    # Strings go first (they may hold anything, `#` and braces included), but a __name__
    # equality matcher names a metric.
    for match in NAME_MATCHER_RE.finditer(expr):
        names.add(match.group(1) if match.group(1) is not None else match.group(2))
    text = STRING_RE.sub('""', expr)
    text = COMMENT_RE.sub(" ", text)
    text = GRAFANA_VAR_RE.sub(" ", text)
    text = BRACES_RE.sub(" ", text)
    while True:  # nested subqueries: x[5m:1m] inside another range
        reduced = BRACKETS_RE.sub(" ", text)
        if reduced == text:
            break
        text = reduced
    text = LABEL_LIST_RE.sub(" ", text)
    tokens = TOKEN_RE.findall(text)
    for i, token in enumerate(tokens):
        if not NAME_RE.match(token) or token.lower() in KEYWORDS:
            continue
        if i + 1 < len(tokens) and tokens[i + 1] == "(":
            continue  # a function or an aggregation
        names.add(token)
    return names


def allowed_from_doc(path):
    """Names from the metrics table: `| `name` | type | ... |`."""
    allowed = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 2 or not line.lstrip().startswith("|"):
                continue
            match = re.fullmatch(r"`([^`]+)`", cells[0])
            if not match or not NAME_RE.match(match.group(1)):
                continue
            allowed |= series_names(match.group(1), cells[1].strip("` ").lower())
    return allowed


def allowed_from_exposition(path):
    allowed = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split()
                if len(parts) >= 4 and parts[1] == "TYPE":
                    allowed |= series_names(parts[2], parts[3].lower())
                continue
            match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if match:
                allowed.add(match.group(0))
    return allowed


def series_names(name, kind):
    """The series names a family of this type exposes."""
    if kind in ("histogram", "gaugehistogram"):
        return {name + s for s in HISTOGRAM_SUFFIXES}
    if kind == "summary":
        return {name} | {name + s for s in SUMMARY_SUFFIXES}
    if kind == "counter" and not name.endswith("_total"):
        return {name, name + "_total"}  # OpenMetrics names the family without _total
    return {name}


def rule_expressions(path):
    import yaml  # python3-yaml; only needed for the rules file

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    exprs, records = [], set()
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            kind = "alert" if "alert" in rule else "record"
            name = rule.get(kind, "?")
            if kind == "record":
                records.add(name)
            if rule.get("expr") is not None:
                where = f"{path}: group {group.get('name', '?')}, {kind} {name}"
                exprs.append((where, str(rule["expr"])))
    return exprs, records


def dashboard_expressions(path):
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    dash = dash.get("dashboard", dash)  # the API's {"dashboard": {...}} wrapper
    exprs = []

    def walk(panels, prefix):
        for panel in panels or []:
            title = f"{prefix}{panel.get('type', 'panel')} \"{panel.get('title', '')}\""
            if panel.get("id") is not None:
                title += f" (id {panel['id']})"
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    exprs.append((f"{path}: {title}, target {target.get('refId', '?')}",
                                  target["expr"]))
            walk(panel.get("panels"), title + " > ")  # a collapsed row's panels

    walk(dash.get("panels"), "")
    for row in dash.get("rows") or []:  # schemaVersion < 16
        walk(row.get("panels"), f"row \"{row.get('title', '')}\" > ")
    return exprs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", action="append", default=[], help="Prometheus rule file")
    parser.add_argument("--dashboard", action="append", default=[], help="Grafana dashboard JSON")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--metrics-doc", help="docs/metrics.md")
    source.add_argument("--exposition", help="a /metrics scrape (text format)")
    args = parser.parse_args(argv)
    if not args.rules and not args.dashboard:
        parser.error("give --rules and/or --dashboard")

    try:
        if args.metrics_doc:
            allowed, source_name = allowed_from_doc(args.metrics_doc), args.metrics_doc
        else:
            allowed, source_name = allowed_from_exposition(args.exposition), args.exposition
        exprs = []
        for path in args.rules:
            rule_exprs, records = rule_expressions(path)
            exprs += rule_exprs
            allowed |= records
        for path in args.dashboard:
            exprs += dashboard_expressions(path)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        print(f"check_metric_names: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # yaml.YAMLError and friends
        print(f"check_metric_names: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if not allowed:
        print(f"check_metric_names: no metric names found in {source_name}", file=sys.stderr)
        return 2
    if not exprs:
        print("check_metric_names: no PromQL expressions found", file=sys.stderr)
        return 1
    allowed |= ALWAYS_ALLOWED

    used, unknown = set(), 0
    for where, expr in exprs:
        for name in sorted(metric_names(expr)):
            used.add(name)
            if name in allowed:
                continue
            unknown += 1
            hint = ""
            if any(name + s in allowed for s in HISTOGRAM_SUFFIXES):
                hint = " (a histogram: use _bucket, _sum or _count)"
            print(f"unknown metric {name}{hint}\n  in {where}\n  expr: {' '.join(expr.split())}")
    if unknown:
        print(f"FAIL: {unknown} unknown metric name use(s); allowed names come from {source_name}")
        return 1
    print(f"OK: {len(exprs)} expressions, {len(used)} distinct metric names, "
          f"all in {source_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
