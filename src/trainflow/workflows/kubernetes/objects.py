"""Reading Kubernetes objects as the client returns them (model objects) or as fakes and JSON do (dicts)."""

from __future__ import annotations

from typing import Any


def items_of(listing: Any) -> list[Any]:
    return list(listing.get("items", []) if isinstance(listing, dict) else getattr(listing, "items", []) or [])


def field_of(obj: Any, *path: str) -> Any:
    """A field of a client model object or of a plain dict (what tests' fake clients return)."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return obj
