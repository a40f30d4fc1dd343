"""Stripe's form encoding: `a[b][0][c]=v` pairs to nested dicts and lists, and typed reads."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from dev.stripe_sim.errors import StripeError

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def parse_pairs(raw: bytes | str) -> list[tuple[str, str]]:
    """The (key, value) pairs of a form body or query string, blanks kept (they unset)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return parse_qsl(text, keep_blank_values=True)


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Nests bracketed keys: `line_items[0][price]=p` -> {"line_items": [{"price": "p"}]}.

    A dict whose keys are all indexes becomes a list in index order; `a[]=x` appends.
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if not match:
            raise StripeError(400, f"Invalid parameter name: {key}", param=key)
        path = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for i, part in enumerate(path):
            if part == "":
                part = str(len(node))
            last = i == len(path) - 1
            existing = node.get(part)
            if last:
                if isinstance(existing, dict):
                    raise StripeError(400, f"Invalid value for {key}: expected a hash", param=key)
                node[part] = value
            else:
                if existing is None:
                    existing = node[part] = {}
                elif not isinstance(existing, dict):
                    raise StripeError(400, f"Invalid hash for parameter {key}", param=key)
                node = existing
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def fingerprint(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What two requests must share to be "the same parameters" for an idempotency key."""
    return sorted(pairs)


def get_str(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise StripeError(400, f"Missing required param: {name}.", param=name)
        return None
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {name} must be a string", param=name)
    return value


def get_bool(params: dict[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise StripeError(400, f"Invalid boolean: {value}", param=name)


def get_int(
    params: dict[str, Any], name: str, *, minimum: int | None = None, param: str | None = None
) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", param=param or name) from None
    if minimum is not None and number < minimum:
        message = f"This value must be greater than or equal to {minimum}."
        raise StripeError(400, message, param=param or name)
    return number


def get_metadata(params: dict[str, Any], name: str = "metadata") -> dict[str, str] | None:
    """A metadata hash; None when absent, {} for `metadata=` (which clears on update).

    Empty values are kept: on update they unset that key (see `merge_metadata`).
    """
    value = params.get(name)
    if value is None:
        return None
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, f"Invalid hash: {name}", param=name)
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise StripeError(400, f"Invalid value for {name}[{key}]", param=f"{name}[{key}]")
        if len(key) > 40:
            message = f"Metadata keys can have up to 40 characters; {key!r} has {len(key)}."
            raise StripeError(400, message, param=f"{name}[{key}]")
        if len(item) > 500:
            message = "Metadata values can have up to 500 characters."
            raise StripeError(400, message, param=f"{name}[{key}]")
        out[key] = item
    if len(out) > 50:
        raise StripeError(400, "Metadata can have up to 50 keys.", param=name)
    return out


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's update rule: keys merge, an empty value unsets, an empty hash clears all."""
    if update is None:
        return current
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
