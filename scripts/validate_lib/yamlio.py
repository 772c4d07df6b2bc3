"""YAML loading that keeps scalars as Kubernetes sees them (no timestamp conversion)."""

from __future__ import annotations

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
