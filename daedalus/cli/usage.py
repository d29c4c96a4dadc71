"""How the command line reports a mistake and describes its options (issue #16).

- A usage error (unknown command or option, a bad value, a missing argument) is ONE line on stderr,
  `error: <click's message, suggestion included> (see 'daedalus build --help')`, and exit code 2.
  typer 0.29 raises its own vendored click exceptions (`typer._click.exceptions`), and the real
  `click` may not even be installed (no dev extra), so both are recognised here.
- Help shows click-style metavars (TEXT, INTEGER, NUMBER, PATH, `TEXT ...` for a repeatable option,
  nothing for a flag) instead of typer's `<bool>` / `<list[str]>`.
"""

from __future__ import annotations

import re
from typing import Any

_LABELS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH", "bool": "BOOLEAN"}


def usage_error_classes() -> tuple[type[BaseException], ...]:
    """The exception classes that carry a usage error and its exit code (typer's vendored click,
    and click's own when it is installed)."""
    from typer._click.exceptions import ClickException

    classes: list[type[BaseException]] = [ClickException]
    try:
        import click

        classes.append(click.ClickException)
    except ImportError:  # click is only in the dev extra
        pass
    return tuple(classes)


def one_line(e: Any) -> str:
    """The message of a click/typer usage exception on one line, with the command's help hint."""
    message = " ".join(str(e.format_message()).split())
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _metavar(self: Any, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    if self.is_flag:
        return None
    label = _ORIGINAL(self, ctx) or ""
    inner = label.strip("<>")
    repeat = inner.startswith("list[")
    if repeat:
        inner = inner[len("list[") : -1]
    name = _LABELS.get(inner) or (inner if "|" in inner else re.sub(r"\W", "", inner).upper() or "VALUE")
    return f"{name} ..." if repeat else name


def _argument_metavar(self: Any, ctx: Any) -> str | None:
    label = (_ORIGINAL_ARG(self, ctx) or "").strip("<>")
    return _LABELS.get(label, label.upper() or None)


_ORIGINAL: Any = None
_ORIGINAL_ARG: Any = None


def install_help_metavars() -> None:
    """Replace typer's `<type>` labels in help by click-style metavars (idempotent)."""
    global _ORIGINAL, _ORIGINAL_ARG
    from typer.core import TyperArgument, TyperOption

    if _ORIGINAL is None:
        _ORIGINAL = TyperOption.display_type_rich
        _ORIGINAL_ARG = TyperArgument.display_type_rich
        TyperOption.display_type_rich = _metavar  # type: ignore[method-assign]
        TyperArgument.display_type_rich = _argument_metavar  # type: ignore[method-assign]
