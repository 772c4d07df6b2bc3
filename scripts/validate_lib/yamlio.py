"""YAML loading that keeps scalars as Kubernetes sees them (no timestamp conversion)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc]
    """Safe loader (libyaml when available) that leaves timestamps as strings."""


Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_all(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=Loader) if d is not None]


def load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 (Loader is a SafeLoader)


def dump(data: Any) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def dump_all(docs: list[Any]) -> str:
    return str(yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False))


_DOC_SEP = re.compile(r"^---[ \t]*$", re.MULTILINE)
BIG_DOC = 200_000  # bytes; parsing such documents (CRDs) dominates the gate's run time


def load_all_cached(text: str, cache_dir: Path | None) -> list[Any]:
    """load_all, with large documents cached as JSON by content hash (libyaml is slow on CRDs)."""
    if cache_dir is None:
        return load_all(text)
    out: list[Any] = []
    for chunk in _DOC_SEP.split(text):
        if len(chunk) < BIG_DOC:
            out.extend(load_all(chunk))
            continue
        digest = hashlib.sha256(chunk.encode()).hexdigest()[:32]
        f = cache_dir / f"doc-{digest}.json"
        if f.is_file():
            out.append(json.loads(f.read_text()))
            continue
        docs = load_all(chunk)
        out.extend(docs)
        if len(docs) == 1:
            # Uncachable (read-only checkout, non-JSON scalars): parsed again next time.
            with contextlib.suppress(OSError, TypeError, ValueError):
                write_atomic(f, json.dumps(docs[0]))
    return out


def canonical_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write via a private temp file + rename: parallel gate runs share the cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
