"""CLI commands that serve the lake: docs, query, shell, catalog.

Each command calls one library function (daedalus.serve, the catalog rewrite of daedalus.build) and
prints its result; errors are DaedalusErrors that `daedalus.cli.app.main` turns into one line and an
exit code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from daedalus.cli.context import global_options

if TYPE_CHECKING:
    from daedalus.config import Config


def _cfg(ctx: typer.Context) -> Config:
    return global_options(ctx).lake_config()


DOCS_OUTPUT_HELP = "Directory for index.html and health.html (default: <root>/docs)."
DOCS_START_HELP = "health.html: first UTC day (YYYY-MM-DD; default: ends on the newest)."


def docs_command(
    ctx: typer.Context,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Directory for index.html and health.html (default: <root>/docs)."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="health.html: first UTC day (YYYY-MM-DD; default: ends on the newest)."),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", help="health.html: how many UTC days, one cell per hour.")
    ] = 1,
) -> None:
    """Write self-contained HTML pages: index.html (lineage graph, models, columns, tests, last build
    stats) and health.html (per series an hour strip of rows, breaks, losses and rejects; freshness;
    build durations; data tests; mid, spread and VPIN per symbol).

    Example: daedalus docs --output site/ --days 2
    """
    from daedalus.serve.docs_site import write_docs

    path = write_docs(_cfg(ctx), output, start, days)
    typer.echo(str(path))


def query_command(
    ctx: typer.Context,
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over the catalog's views (bronze.*, silver.*, gold.*): any "
            "read-only statement (SELECT, DESCRIBE, SUMMARIZE, SHOW, PRAGMA, EXPLAIN), "
            "several separated by ';'."
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | csv | json | parquet.")] = "table",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to this file (required for parquet).")
    ] = None,
    append: Annotated[
        bool,
        typer.Option(
            "--append",
            "-a",
            help="Append to --output instead of replacing it "
            "(csv: header only into an empty file; json: one record per line).",
        ),
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="Rows shown by --format table.")] = 1000,
) -> None:
    """Run SQL on the read-only catalog, like the DuckDB CLI (errors keep DuckDB's hints).

    Example: daedalus query "DESCRIBE gold.trade_bars; SELECT count(*) FROM silver.trades" --format csv
    """
    from daedalus.serve.query import run_query

    run_query(_cfg(ctx), sql, fmt, output, limit, append=append)


def catalog_command(ctx: typer.Context) -> None:
    """Rewrite catalog.duckdb from the project and the manifest (after moving the lake, after an
    upgrade from absolute-path catalogs, or to check it); prints its path.

    Example: daedalus catalog
    """
    from daedalus.build import rewrite_catalog

    typer.echo(rewrite_catalog(_cfg(ctx)))


def shell_command(ctx: typer.Context) -> None:
    """Open the DuckDB CLI on the read-only catalog (httpfs loaded when the lake is on S3).

    Example: daedalus shell
    """
    from daedalus.serve.catalog import exec_shell

    exec_shell(_cfg(ctx))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("docs")(docs_command)
    app.command("query")(query_command)
    app.command("shell")(shell_command)
    app.command("catalog")(catalog_command)
