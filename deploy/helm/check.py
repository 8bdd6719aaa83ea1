#!/usr/bin/env python3
"""Checks the Helm chart offline: strict lint, render with the default and example
values, validate every manifest against the Kubernetes schemas, and parse the
rendered skyshard.toml with the skyshard binary.

usage: check.py SKYSHARD_BINARY
"""
import pathlib
import subprocess
import sys
import tempfile

import helm_python
import yaml

KUBE = "1.30.0"
CHART = pathlib.Path(__file__).resolve().parent / "skyshard"
VALUE_FILES = [None, CHART / "values-example.yaml", CHART / "values-edge.yaml"]
# Variants of the example: (label, the cache block, a check of the rendered Deployment).
HOSTPATH = ({"type": "hostPath", "size": "20Gi", "hostPath": "/var/lib/skyshard-cache"},)


def spread_by_node(deployment):
    """True if replicas are kept on separate nodes (a hostPath cache is one process's)."""
    terms = deployment["spec"]["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
    required = terms.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    return any(t.get("topologyKey") == "kubernetes.io/hostname" for t in required)


def variants():
    for vf in VALUE_FILES:
        yield (vf.name if vf else "default values"), (yaml.safe_load(vf.read_text()) if vf else {}), None
    example = yaml.safe_load((CHART / "values-example.yaml").read_text())
    for cache in HOSTPATH:
        yield "example with a hostPath cache", {**example, "cache": cache}, spread_by_node
CRDS = {"ServiceMonitor"}  # not in the bundled schemas: checked for shape only


def main():
    skyshard = sys.argv[1]
    failures = 0
    for label, values, deployment_check in variants():
        report = helm_python.lint(str(CHART), values, strict=True, kube_version="v" + KUBE)
        bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
        if bad:
            print(f"lint ({label}): {bad}")
            failures += 1
        rendered = helm_python.Chart.load(str(CHART)).render(values, name="sky", namespace="storage", is_install=True)
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for path, text in rendered.items():
                if not path.endswith(".yaml") or not text.strip():
                    continue
                for doc in yaml.safe_load_all(text):
                    if not doc:
                        continue
                    if deployment_check and doc.get("kind") == "Deployment" and not deployment_check(doc):
                        print(f"Deployment ({label}) fails {deployment_check.__name__}")
                        failures += 1
                    if doc.get("kind") in CRDS:
                        assert doc.get("apiVersion") and doc.get("spec"), doc
                        continue
                    if doc.get("kind") == "ConfigMap" and "skyshard.toml" in doc.get("data", {}):
                        toml = pathlib.Path(tmp) / "skyshard.toml"
                        toml.write_text(doc["data"]["skyshard.toml"])
                        r = subprocess.run([skyshard, "config", "check", "--config", str(toml)], capture_output=True, text=True)
                        if r.returncode != 0:
                            print(f"rendered skyshard.toml ({label}) does not parse: {r.stderr}\n{toml.read_text()}")
                            failures += 1
                    f = pathlib.Path(tmp) / f"{len(files)}-{doc['kind']}.yaml"
                    f.write_text(yaml.safe_dump(doc))
                    files.append(f)
            r = subprocess.run(
                [str(pathlib.Path(sys.executable).parent / "kubernetes-validate"), "-k", KUBE, "--strict", *map(str, files)],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                print(f"kubernetes-validate ({label}):\n{r.stdout}{r.stderr}")
                failures += 1
            kinds = sorted(f.name.split("-", 1)[1][:-5] for f in files)
            print(f"chart ({label}): lint clean, {len(files)} manifests valid: {', '.join(kinds)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
