"""Layer 2: strict schemas, checked by kubeconform (built by scripts/lib/go-tool) offline.

The schemas are local files: Kubernetes' strict schemas (unknown fields rejected) as
kubernetes-validate ships them for the Kubernetes version minikube 1.38 starts by default, with
their $refs made local; and the pinned Argo Workflows / Argo CD CRDs' openAPIV3Schema converted to
JSON Schema, unknown fields rejected wherever the CRD lists properties and does not say
x-kubernetes-preserve-unknown-fields. Both are written once per version into .cache/validate/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv

from . import tools, upstream, yamlio
from .model import Obj, Report, Resource, as_dict, as_list

# Kubernetes 1.35: taken as minikube 1.38's default (kubernetes-validate ships 1.33-1.37).
K8S_VERSION = os.environ.get("VALIDATE_K8S_VERSION", "1.35")
MAX_ERRORS_PER_RESOURCE = 10
AT_PATH = re.compile(r"at '([^']*)': ([^\n]*)")
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
CRD_FILES = tuple(f"{upstream.AW}/crds/{f}" for f in upstream.AW_CRD_FILES) + tuple(
    f"{upstream.ACD}/crds/{f}" for f in upstream.ACD_CRD_FILES
)


def crd_to_jsonschema(node: Any) -> Any:
    """openAPIV3Schema -> JSON Schema (2020-12) with unknown fields rejected."""
    if isinstance(node, list):
        return [crd_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for k, v in node.items():
        if k in ("properties", "patternProperties"):
            out[k] = {pk: crd_to_jsonschema(pv) for pk, pv in as_dict(v).items()}
        elif k in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[k] = crd_to_jsonschema(v)
        elif k.startswith("x-kubernetes-") or k in ("description", "nullable", "format"):
            continue  # annotations; handled below or not checked offline (e.g. CEL rules)
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if "properties" in out and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _kv_dir() -> Path:
    base = Path(kv.__file__).parent / "kubernetes-json-schema"
    version = [v for v in kv.all_versions() if kv.major_minor(v) <= K8S_VERSION][-1]
    return base / f"v{version}-local-strict"


def _inline(node: Any, defs: Obj, seen: tuple[str, ...] = ()) -> Any:
    """NODE with each $ref replaced by the definition it names (the $ref's siblings are only
    descriptions): kubeconform then compiles a kind without loading the 1.2 MB
    _definitions.json, ten times faster. A recursive type (JSONSchemaProps) keeps its $ref."""
    if isinstance(node, list):
        return [_inline(x, defs, seen) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and "#/$defs/" in ref:
        name = ref.rpartition("/")[2]
        if name in seen:
            return {"$ref": f"_definitions.json#/$defs/{name}"}
        return _inline(defs[name], defs, (*seen, name))
    return {k: _inline(v, defs, seen) for k, v in node.items()}


def _write_crd_schemas(rel: str, out: Path, meta: Obj) -> None:
    """One file per served version, named as kubeconform looks it up: kind-group-version.json
    (the group's first label, as kubernetes-validate names its files)."""
    doc = yamlio.load(upstream.local_path(rel).read_text())
    spec = as_dict(doc.get("spec"))
    kind, group = str(as_dict(spec.get("names")).get("kind")), str(spec.get("group"))
    for v in as_list(spec.get("versions")):
        if not v.get("served"):
            continue
        schema = crd_to_jsonschema(as_dict(as_dict(v.get("schema")).get("openAPIV3Schema")))
        schema.setdefault("properties", {})["metadata"] = meta
        name = f"{kind.lower()}-{group.split('.')[0]}-{v.get('name')}.json"
        (out / name).write_text(json.dumps(schema))


@cache
def schema_dir() -> Path:
    """The local schema directory, written once per kubernetes-validate release and CRD set."""
    src = _kv_dir()
    key = hashlib.sha256(str(src).encode())
    for rel in CRD_FILES:
        key.update(upstream.file_digest(upstream.local_path(rel)).encode())
    key.update(Path(__file__).read_bytes())  # a changed conversion makes new schemas
    out = upstream.CACHE_DIR.parent / "validate" / f"schemas-{key.hexdigest()[:16]}"
    if out.is_dir():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".schemas-", dir=out.parent))
    defs_doc = json.loads((src / "_definitions.json").read_text())
    defs_doc.pop("$id")  # https://kubernetes.io/api/...: the file is local
    (tmp / "_definitions.json").write_text(json.dumps(defs_doc))
    defs = defs_doc["$defs"]
    for f in src.glob("*-*.json"):  # kind-group-version.json; not _definitions.json or all.json
        schema = json.loads(f.read_text())
        schema.pop("$id", None)
        (tmp / f.name).write_text(json.dumps(_inline(schema, defs)))
    meta = _inline(defs[OBJECT_META], defs)
    for rel in CRD_FILES:
        _write_crd_schemas(rel, tmp, meta)
    try:
        tmp.rename(out)
    except OSError:  # another run wrote it first
        shutil.rmtree(tmp)
    for stale in out.parent.glob("schemas-*"):  # 22 MB each: keep only the current set
        if stale != out:
            shutil.rmtree(stale, ignore_errors=True)
    return out


def validate(
    items: list[tuple[Resource, Obj, str]], report: Report, skip_kinds: frozenset[str] = frozenset()
) -> None:
    """kubeconform over each (resource, object, where) in one run; problems reported on the
    resource, their field paths prefixed with `where` (e.g. the Argo template a Pod comes from)."""
    if not items:
        return
    # The schemas first: a missing pinned upstream file is reported before any tool is built.
    location = str(schema_dir() / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    args = ["-strict", "-output", "json", "-schema-location", location]
    if skip_kinds:
        args += ["-skip", ",".join(sorted(skip_kinds))]
    p = tools.run_over("kubeconform", args, [obj for _, obj, _ in items])
    try:
        results = json.loads(p.stdout)["resources"]
    except (ValueError, KeyError, TypeError):
        report.add("schema", None, "", f"kubeconform failed: {p.stderr.strip()}", source="-")
        return
    for res in results:
        if res.get("status") not in ("statusInvalid", "statusError"):
            continue
        r, obj, where = items[int(Path(str(res.get("filename"))).stem)]
        msg = str(res.get("msg"))
        if "could not find schema" in msg:
            report.add(
                "schema",
                r,
                f"{where}apiVersion" if where else "apiVersion",
                f"no schema for {obj.get('kind')} {obj.get('apiVersion')} in Kubernetes "
                f"{K8S_VERSION} nor the pinned Argo CRDs: wrong apiVersion or kind, or an API "
                "that was removed (kubeconform)",
            )
            continue
        # The message holds the deepest errors ("at '/spec/...': reason"); validationErrors
        # only the outermost ones, e.g. "/spec: validation failed".
        errs = AT_PATH.findall(msg) or [
            (str(e.get("path")), str(e.get("msg"))) for e in as_list(res.get("validationErrors"))
        ]
        for at, why in errs[:MAX_ERRORS_PER_RESOURCE] or [("", msg)]:
            path = ".".join(f"[{p}]" if p.isdigit() else p for p in at.split("/") if p)
            report.add("schema", r, f"{where}{path.replace('.[', '[')}", f"{why} (kubeconform)")
