"""Field-by-field differences between two renderings of the same manifests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


@dataclass(frozen=True)
class Difference:
    key: Key
    path: str  # JSON-pointer-like, e.g. /spec/template/spec/containers/0/image
    before: Any
    after: Any


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("apiVersion")),
        str(obj.get("kind")),
        str(meta.get("namespace", "")),
        str(meta.get("name")),
    )


def index(objs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for obj in objs:
        k = key_of(obj)
        if k in out:
            raise ValueError(f"rendered twice: {k}")
        out[k] = obj
    return out


def _walk(key: Key, path: str, a: Any, b: Any, out: list[Difference]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for name in sorted(set(a) | set(b), key=str):
            sub = f"{path}/{name}"
            if name not in a:
                out.append(Difference(key, sub, None, b[name]))
            elif name not in b:
                out.append(Difference(key, sub, a[name], None))
            else:
                _walk(key, sub, a[name], b[name], out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            sub = f"{path}/{i}"
            if i >= len(a):
                out.append(Difference(key, sub, None, b[i]))
            elif i >= len(b):
                out.append(Difference(key, sub, a[i], None))
            else:
                _walk(key, sub, a[i], b[i], out)
    elif a != b or type(a) is not type(b):
        out.append(Difference(key, path, a, b))


def compare(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> tuple[list[Key], list[Key], list[Difference]]:
    """(objects only before, objects only after, field differences of the common ones)."""
    ia, ib = index(before), index(after)
    diffs: list[Difference] = []
    for k in sorted(set(ia) & set(ib)):
        _walk(k, "", ia[k], ib[k], diffs)
    return sorted(set(ia) - set(ib)), sorted(set(ib) - set(ia)), diffs
