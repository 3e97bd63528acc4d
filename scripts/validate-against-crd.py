#!/usr/bin/env python3
"""Checks custom resources against their CustomResourceDefinition's schema
as the API server does: types, enums, patterns, ranges and required fields
(jsonschema), and no field the schema does not declare outside
x-kubernetes-preserve-unknown-fields (where the server would prune it, this
refuses it: a typo must not pass silently).

    validate-against-crd.py CRD.yaml OBJECT.yaml...
"""
import sys

import jsonschema
import yaml


def unknown_fields(schema, value, path):
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, inner in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}: not a field of the schema")
            else:
                found += unknown_fields(schema["properties"][key], inner, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, inner in enumerate(value):
            found += unknown_fields(schema["items"], inner, f"{path}[{i}]")
    return found


def main():
    crd_path, *paths = sys.argv[1:]
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    versions = {f"{group}/{v['name']}": v for v in crd["spec"]["versions"] if v["served"]}
    failures = []
    for path in paths:
        with open(path) as f:
            documents = [d for d in yaml.safe_load_all(f) if d is not None]
        for doc in documents:
            where = f"{path} ({doc.get('kind')} {doc.get('metadata', {}).get('name')})"
            version = versions.get(doc.get("apiVersion"))
            if version is None or doc.get("kind") != kind:
                failures.append(f"{where}: apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r} is not served by {crd_path} (served: {sorted(versions)} {kind})")
                continue
            schema = version["schema"]["openAPIV3Schema"]
            validator = jsonschema.Draft7Validator(schema)
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                at = ".".join(str(p) for p in error.path) or "(root)"
                failures.append(f"{where}: {at}: {error.message}")
            failures += [f"{where}: {u}" for u in unknown_fields(schema, doc, "")]
            if not doc.get("metadata", {}).get("name"):
                failures.append(f"{where}: metadata.name: required")
    for failure in failures:
        print(failure)
    sys.exit(1 if failures else 0)


main()
