"""Edit specs: ``auto:<name>[:key=value,...]``, ``instruct:<text>``, ``img2img:<text>``, parsed here only.

The keys an ``auto`` edit accepts, their types and defaults are read from the edit function's
signature in `pdedit.instructions.edits`, so adding a parameter there makes it settable here.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any

from pdedit.errors import BadInput
from pdedit.instructions.edits import EDITS

__all__ = ["EditSpec", "SPEC_KINDS", "parse_edit_spec", "is_edit_spec", "edit_params", "describe_edits"]

# kind -> its syntax, for error messages.
SPEC_KINDS = {
    "auto": "auto:<name>[:key=value,...] (built-in, no weights)",
    "instruct": "instruct:<text> (InstructPix2Pix, needs --edit-model DIR)",
    "img2img": "img2img:<prompt> (Stable Diffusion img2img, needs --edit-model DIR)",
}


@dataclass(frozen=True)
class EditSpec:
    """A parsed edit: ``kind`` is auto|instruct|img2img; ``name`` and ``params`` for auto, ``text`` else."""

    kind: str
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        if self.kind != "auto":
            return f"{self.kind}:{self.text}"
        args = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"auto:{self.name}" + (f":{args}" if args else "")


def edit_params(name: str) -> dict[str, tuple[type, Any]]:
    """The keys an auto edit accepts: key -> (type, default), from its signature."""
    fn = EDITS[name]
    hints = typing.get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())[1:]  # the first is the frame
    return {p.name: (hints.get(p.name, str), p.default) for p in params}


def describe_edits() -> str:
    """The auto edits with their keys and defaults on one line, for help texts and error messages."""
    parts = []
    for name in EDITS:
        keys = ", ".join(f"{k}={d!r}" if d != "" else f"{k}=PATH" for k, (_, d) in edit_params(name).items())
        parts.append(f"auto:{name}" + (f"({keys})" if keys else ""))
    return "; ".join(parts)


def is_edit_spec(text: str) -> bool:
    """True when ``text`` is an edit spec (auto:/instruct:/img2img:) rather than an image path."""
    kind, sep, _ = str(text).partition(":")
    return bool(sep) and kind in SPEC_KINDS


def _convert_value(spec: str, key: str, raw: str, kind: type) -> Any:
    """Turn the text of one ``key=value`` into the parameter's type, or BadInput naming both."""
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise BadInput(f"edit spec {spec!r}: {key}={raw!r} is not a valid {kind.__name__}") from None
    return raw


def parse_edit_spec(spec: str | EditSpec) -> EditSpec:
    """Parse ``auto:<name>[:k=v,...]``, ``instruct:<text>`` or ``img2img:<text>`` into an EditSpec.

    Args:
        spec: the spec text (or an EditSpec, returned as is).

    Raises:
        BadInput: unknown kind, unknown edit name or key (listing the valid ones), a value of the
            wrong type, or an empty instruction text.
    """
    if isinstance(spec, EditSpec):
        return spec
    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    if not sep or kind not in SPEC_KINDS:
        kinds = "; ".join(SPEC_KINDS.values())
        raise BadInput(f"edit spec {text!r} is not one of: {kinds}; built-in edits: {describe_edits()}")
    if kind != "auto":
        if not rest.strip():
            raise BadInput(f"edit spec {text!r} has no text: write {kind}:<text>, e.g. {kind}:make it winter")
        return EditSpec(kind=kind, text=rest.strip())

    name, _, args = rest.partition(":")
    name = name.strip().lower()
    if name not in EDITS:
        raise BadInput(f"unknown edit {name!r} in {text!r}; built-in edits are: {describe_edits()}")
    accepted = edit_params(name)
    params: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().lower()
        if not eq:
            raise BadInput(f"edit spec {text!r}: {item!r} is not key=value")
        if key not in accepted:
            valid = ", ".join(accepted) or "none"
            raise BadInput(f"edit spec {text!r}: auto:{name} has no key {key!r}; valid keys: {valid}")
        params[key] = _convert_value(text, key, raw.strip(), accepted[key][0])
    return EditSpec(kind="auto", name=name, params=params)
