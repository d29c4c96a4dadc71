"""Render `config/config.example.yaml` from the config models, so the example documents every key
with its default and can never drift from the code (a test compares the two)."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from pydantic import BaseModel

from daedalus.config import Config

HEADER = """\
# Daedalus configuration: every key, with its default and what it does.
# Generated from daedalus/config.py by `python -m daedalus.config_doc`; do not edit by hand.
# Load order: defaults -> this file -> environment (DAEDALUS__SECTION__KEY=value) -> CLI flags.
# Credentials never go here: S3 keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the
# AWS credential chain; Coinbase keys from COINBASE_API_KEY / COINBASE_API_SECRET.
"""


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _render(model: BaseModel, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        doc = field.description or ""
        for chunk in textwrap.wrap(doc, 96 - len(pad)):
            lines.append(f"{pad}# {chunk}")
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.extend(_render(value, indent + 1))
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            lines.append(f"{pad}{name}:")
            for key, sub in value.items():
                lines.append(f"{pad}  {key}:")
                lines.extend(_render(sub, indent + 2))
        elif isinstance(value, dict):
            lines.append(f"{pad}{name}: {{}}")
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")
        if indent == 0:
            lines.append("")
    return lines


def render_example() -> str:
    body = _render(Config(), 0)
    return HEADER + "\n" + "\n".join(body).rstrip() + "\n" + EXAMPLE_OVERRIDES


EXAMPLE_OVERRIDES = """
# Per-symbol overrides go under etl.symbols, e.g.:
# etl:
#   symbols:
#     BTC/USDT:
#       vpin_bucket_volume: 25
"""


if __name__ == "__main__":
    print(render_example(), end="")
