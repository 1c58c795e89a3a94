#!/usr/bin/env python3
"""Prints the field table of docs/manifest-reference.md from the CRD, the schema's source of truth.

Usage: scripts/gen-manifest-reference.py > /tmp/table.md, then paste between the markers. The
test `ManifestReferenceTest` fails when a CRD field is missing from the document.
"""
import sys

import yaml

crd = yaml.safe_load(open(sys.argv[1] if len(sys.argv) > 1 else "crd/cloudrunservices.runway.dev.yaml"))
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
PIPE = "\\|"


def row(schema, path, required):
    rule = []
    if "enum" in schema:
        rule.append("one of " + ", ".join(f"`{e}`" for e in schema["enum"]))
    if "pattern" in schema:
        rule.append(f"pattern `{schema['pattern']}`")
    if "minimum" in schema or "maximum" in schema:
        rule.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "maxLength" in schema:
        rule.append(f"at most {schema['maxLength']} characters")
    if "minItems" in schema:
        rule.append(f"at least {schema['minItems']} items")
    if "maxItems" in schema:
        rule.append(f"at most {schema['maxItems']} items")
    default = schema.get("default")
    if isinstance(default, bool):
        default = str(default).lower()
    shown_default = "" if default is None else f"`{default}`"
    description = " ".join(schema.get("description", "").split())
    kind = schema.get("type", "") + (" (required)" if required else "")
    rule_text = "; ".join(rule).replace("|", PIPE)
    return f"| `{path}` | {kind} | {shown_default} | {rule_text} | {description.replace('|', PIPE)} |"


def walk(schema, path, required, rows):
    if path.split(".")[0] in ("spec", "metadata") and path != "metadata.labels" and path != "metadata.annotations":
        rows.append(row(schema, path, required))
    for key, child in schema.get("properties", {}).items():
        walk(child, f"{path}.{key}" if path else key, key in schema.get("required", []), rows)
    items = schema.get("items", {})
    for key, child in items.get("properties", {}).items():
        walk(child, f"{path}[].{key}", key in items.get("required", []), rows)


rows = []
walk(schema, "", False, rows)
print("| field | type | default | rule | meaning |")
print("|---|---|---|---|---|")
print("\n".join(rows))
