"""The command line as click should see it: `--select a b c` spelled the way dbt users type it.

click options take one value each, so before the app parses argv, `expand_command_line` repeats the
option for each bare word after `--select`/`--exclude` of a command that takes no positional
argument. Which commands those are, and which global options take a value, is the CLI's own
knowledge: it lives here, not in the build package.
"""

from __future__ import annotations


def expand_list_options(
    argv: list[str], options: tuple[str, ...] = ("--select", "-s", "--exclude")
) -> list[str]:
    """`--select a b c` → `--select a --select b --select c` (click options take one value each), for
    the values up to the next option. Only used for commands without positional arguments."""
    out: list[str] = []
    current: str | None = None
    for tok in argv:
        if tok in options or tok.split("=", 1)[0] in options:
            current = tok.split("=", 1)[0]
            out.append(tok)
            continue
        if tok.startswith("-"):
            current = None
        elif current is not None and out and out[-1] != current:
            out.append(current)
        out.append(tok)
    return out


GLOBAL_WITH_VALUE = ("--config", "-c", "--root", "--threads", "--memory-limit")
LIST_COMMANDS = ("build", "run", "test", "ls", "compact", "watch", "retry")


def expand_command_line(argv: list[str]) -> list[str]:
    """`expand_list_options` applied after the command word, when that command takes no positional
    argument (so a bare word after `--select x` can only be another selector)."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in GLOBAL_WITH_VALUE:
            i += 2
            continue
        if tok.startswith("-"):
            i += 1
            continue
        if tok in LIST_COMMANDS:
            return [*argv[: i + 1], *expand_list_options(argv[i + 1 :])]
        return argv
    return argv
