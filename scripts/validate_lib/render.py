"""Layer 1: find kustomizations and render them offline with `kubectl kustomize`.

Each render runs on a temporary copy of the repo in which every pinned upstream URL among a
kustomization's resources is replaced by a local directory holding the pinned file, so nothing
is downloaded (see upstream.py). The top kustomization also gets
`buildMetadata: [originAnnotations]` so each rendered object names the file it came from; the
annotation is removed before validation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from . import upstream, yamlio
from .model import Obj, Report, Resource, as_dict, as_list

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SKIP_DIRS = frozenset(
    {
        ".git",
        ".cache",
        "node_modules",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "build",
        "dist",
    }
)
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
KUSTOMIZE_TIMEOUT = 300
CACHE_DIR = upstream.CACHE_DIR.parent / "validate"


def _skip_dir(name: str) -> bool:
    return name in SKIP_DIRS or name.startswith(".venv")


def kustomization_file(d: Path) -> Path | None:
    for n in KUSTOMIZATION_NAMES:
        if (d / n).is_file():
            return d / n
    return None


def discover(root: Path) -> list[Path]:
    """Every kustomization dir in the repo, except test fixtures and virtualenvs."""
    found: list[Path] = []
    for dirpath, dirnames, _files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not _skip_dir(d))
        if rel.parts[:1] == ("tests",):
            dirnames[:] = []
            continue
        if kustomization_file(Path(dirpath)):
            found.append(Path(dirpath))
    return found


def read_kustomization(d: Path) -> Obj:
    f = kustomization_file(d)
    if f is None:
        return {}
    try:
        data = yamlio.load(f.read_text())
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def local_refs(d: Path) -> list[Path]:
    """Local kustomization dirs that d includes (resources, bases, components)."""
    k = read_kustomization(d)
    out = []
    for key in ("resources", "bases", "components"):
        for ref in as_list(k.get(key)):
            if isinstance(ref, str) and not upstream.is_remote(ref):
                p = (d / ref).resolve()
                if p.is_dir():
                    out.append(p)
    return out


def roots(dirs: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split into (roots, nested): nested dirs are included by another kustomization."""
    included: set[Path] = set()
    for d in dirs:
        included.update(local_refs(d))
    resolved = [d.resolve() for d in dirs]
    top = [d for d, r in zip(dirs, resolved, strict=True) if r not in included]
    nested = [d for d, r in zip(dirs, resolved, strict=True) if r in included]
    return top, nested


def reachable(start: Path) -> list[Path]:
    """start and every local kustomization it includes, transitively."""
    seen: list[Path] = []
    todo = [start.resolve()]
    while todo:
        d = todo.pop()
        if d in seen or kustomization_file(d) is None:
            continue
        seen.append(d)
        todo.extend(local_refs(d))
    return seen


def is_component(d: Path) -> bool:
    return read_kustomization(d).get("kind") == "Component"


class Renderer:
    """Renders kustomizations from a temporary, URL-mapped copy of the repo."""

    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root.resolve()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._copy_root: Path | None = None
        self._pristine: dict[str, dict[str, str]] = {}
        self._external = 0
        self.kustomize = os.environ.get("VALIDATE_KUSTOMIZE", "")

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="validate-")
        return Path(self._tmp.name)

    @property
    def upstream_dir(self) -> Path:
        return self.tmp / "upstream"

    def _copy_repo(self) -> Path:
        if self._copy_root is None:
            dest = self.tmp / "repo"
            shutil.copytree(
                self.repo_root,
                dest,
                symlinks=True,
                ignore=lambda _d, names: [n for n in names if _skip_dir(n)],
            )
            self._copy_root = dest
        return self._copy_root

    def _copy_of(self, kdir: Path) -> tuple[Path, Path]:
        """(copy of kdir, root of that copy)."""
        kdir = kdir.resolve()
        if kdir.is_relative_to(self.repo_root):
            root = self._copy_repo()
            return root / kdir.relative_to(self.repo_root), root
        self._external += 1
        root = self.tmp / f"external-{self._external}"
        shutil.copytree(kdir, root, symlinks=True)
        return root, root

    def _wrapper_for(self, rel: str) -> Path:
        """A kustomization dir holding one pinned upstream file (kept under the copy's root)."""
        wdir = self.upstream_dir / rel.replace("/", "__")
        if not (wdir / "kustomization.yaml").is_file():
            wdir.mkdir(parents=True, exist_ok=True)
            src = upstream.local_path(rel)
            shutil.copyfile(src, wdir / src.name)
            (wdir / "kustomization.yaml").write_text(
                yamlio.dump(
                    {
                        "apiVersion": "kustomize.config.k8s.io/v1beta1",
                        "kind": "Kustomization",
                        "resources": [src.name],
                    }
                )
            )
        return wdir

    def _map_urls(self, start: Path, root: Path, label: str, report: Report) -> bool:
        """Rewrite pinned URLs in the kustomizations start includes; False if one is unpinned."""
        ok = True
        for d in reachable(start):
            kf = kustomization_file(d)
            if kf is None:
                continue
            try:
                data = yamlio.load(kf.read_text())
            except yaml.YAMLError:
                continue  # kustomize reports the syntax error itself
            if not isinstance(data, dict):
                continue
            changed = False
            for key in ("resources", "bases", "components"):
                entries = data.get(key)
                if not isinstance(entries, list):
                    continue
                for i, ref in enumerate(entries):
                    if not isinstance(ref, str) or not upstream.is_remote(ref):
                        continue
                    rel = upstream.PINNED.get(ref)
                    if rel is None:
                        report.add(
                            "render",
                            None,
                            f"{key}[{i}]",
                            f"{_rel_to(d, root)}: remote resource {ref!r} is not a pinned "
                            "upstream URL (see PINNED in scripts/validate_lib/upstream.py); it "
                            "would be fetched unpinned at sync time",
                            source=label,
                        )
                        ok = False
                        continue
                    wrapper = self._wrapper_for(rel)  # UpstreamError ends the gate (cli.py)
                    entries[i] = os.path.relpath(wrapper, d)
                    changed = True
            if changed:
                kf.write_text(yamlio.dump(data))
        return ok

    def _pristine_index(self, rel: str) -> dict[str, str]:
        """kind/name -> digest of the object as published (cached per file digest)."""
        if rel not in self._pristine:
            path = upstream.local_path(rel)
            cache = CACHE_DIR / f"pristine-{upstream.file_digest(path)[:24]}.json"
            if cache.is_file():
                self._pristine[rel] = json.loads(cache.read_text())
            else:
                docs = yamlio.load_all(path.read_text())
                self._pristine[rel] = {
                    f"{d.get('kind')}/{as_dict(d.get('metadata')).get('name')}": (
                        yamlio.canonical_digest(_strip_ns(d))
                    )
                    for d in docs
                    if isinstance(d, dict)
                }
                with contextlib.suppress(OSError):  # read-only checkout: slower, still right
                    yamlio.write_atomic(cache, json.dumps(self._pristine[rel]))
        return self._pristine[rel]

    def render(self, kdir: Path, label: str, report: Report) -> list[Resource] | None:
        """Render one kustomization; None (with problems reported) when it does not render."""
        copy, root = self._copy_of(kdir)
        # Only the top kustomization's buildMetadata counts; set it on a private copy.
        kf = kustomization_file(copy)
        if kf is None:
            report.add("render", None, "", "no kustomization.yaml", source=label)
            return None
        # Idempotent: entries already mapped are local paths.
        if not self._map_urls(copy, root, label, report):
            return None
        try:
            kdata = yamlio.load(kf.read_text())
        except yaml.YAMLError as exc:
            report.add("render", None, kf.name, f"YAML syntax error: {exc}", source=label)
            return None
        if not isinstance(kdata, dict):
            report.add("render", None, kf.name, "kustomization is not a mapping", source=label)
            return None
        original = kf.read_text()
        bm = [x for x in as_list(kdata.get("buildMetadata")) if isinstance(x, str)]
        if "originAnnotations" not in bm:
            kdata["buildMetadata"] = [*bm, "originAnnotations"]
            kf.write_text(yamlio.dump(kdata))
        try:
            out, err, rc = self._run_kustomize(copy)
        finally:
            kf.write_text(original)
        warnings = [_clean(ln) for ln in err.splitlines() if ln.strip()]
        if rc != 0:
            msg = "; ".join(warnings) or f"kustomize exited {rc}"
            report.add("render", None, "", f"kustomize build failed: {msg}", source=label)
            return None
        for w in warnings:
            # Deprecations in 5.5 may be removals in Argo CD's 5.8.1: treat them as errors.
            report.add("render", None, "", f"kustomize warning: {w.lstrip('# ')}", source=label)
        try:
            docs = yamlio.load_all_cached(out, CACHE_DIR)
        except yaml.YAMLError as exc:
            report.add("render", None, "", f"rendered output is not YAML: {exc}", source=label)
            return None
        return [self._resource(d, copy, root, label) for d in docs if isinstance(d, dict)]

    def _run_kustomize(self, d: Path) -> tuple[str, str, int]:
        cmd = (
            [self.kustomize, "build", str(d)]
            if self.kustomize
            else ["kubectl", "kustomize", str(d)]
        )
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, timeout=KUSTOMIZE_TIMEOUT, check=False
            )
        except FileNotFoundError:
            return "", f"{cmd[0]} not found on PATH", 127
        except subprocess.TimeoutExpired:
            return "", f"timed out after {KUSTOMIZE_TIMEOUT}s", 124
        return p.stdout, p.stderr, p.returncode

    def _resource(self, obj: Obj, kdir_copy: Path, root: Path, label: str) -> Resource:
        meta = as_dict(obj.get("metadata"))
        ann = as_dict(meta.get("annotations"))
        origin_raw = ann.pop(ORIGIN_ANNOTATION, None)
        if "annotations" in meta and not ann:
            del meta["annotations"]
        origin = label
        up = False
        modified = False
        if isinstance(origin_raw, str):
            try:
                o: Any = yamlio.load(origin_raw)
            except yaml.YAMLError:
                o = {}
            o = as_dict(o)
            path = o.get("path") or o.get("configuredIn")
            if isinstance(path, str):
                full = Path(os.path.normpath(kdir_copy / path))
                if full.is_relative_to(self.upstream_dir):
                    rel = full.parent.name.replace("__", "/")
                    origin = upstream.url_for(rel)
                    up = True
                    modified = self._is_modified(obj, rel)
                elif full.is_relative_to(root):
                    origin = str(full.relative_to(root))
                else:
                    origin = path
        return Resource(obj=obj, source=label, origin=origin, upstream=up, modified=modified)

    def _is_modified(self, obj: Obj, rel: str) -> bool:
        key = f"{obj.get('kind')}/{as_dict(obj.get('metadata')).get('name')}"
        pristine = self._pristine_index(rel).get(key)
        return pristine is None or pristine != yamlio.canonical_digest(_strip_ns(obj))


def _clean(line: str) -> str:
    """kubectl's klog prefix off: E1122 02:07:39 run.go:72] "command failed" err="..." """
    m = re.search(r'err="(.*)"\s*$', line)
    text = m.group(1).replace('\\"', '"') if m else line
    return text.replace(str(tempfile.gettempdir()), "$TMP")


def _strip_ns(obj: Obj) -> Obj:
    o = dict(obj)
    m = dict(as_dict(o.get("metadata")))
    m.pop("namespace", None)
    o["metadata"] = m
    return o


def _rel_to(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root)) or "."
    except ValueError:
        return str(p)


def load_file(path: Path | None, label: str, report: Report) -> list[Resource] | None:
    """Rendered YAML from a file (or stdin when path is None)."""
    import sys

    text = sys.stdin.read() if path is None else path.read_text()
    try:
        docs = yamlio.load_all(text)
    except yaml.YAMLError as exc:
        report.add("render", None, "", f"YAML syntax error: {exc}", source=label)
        return None
    out = []
    for i, d in enumerate(docs):
        if isinstance(d, dict) and d.get("kind") == "List":
            docs.extend(x for x in as_list(d.get("items")) if isinstance(x, dict))
            continue
        if not isinstance(d, dict):
            report.add("render", None, f"document[{i}]", "not a mapping", source=label)
            continue
        out.append(Resource(obj=d, source=label, origin=label))
    return out
