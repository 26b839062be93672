"""The ``dexcost report`` command: parse options, build the report, render it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from dexcost.report.query import DATE_HINT, GROUPINGS, ReportError, build_report, parse_when

# The same variable that ``dexcost status`` reads.
BUFFER_PATH_ENV = "DEXCOST_BUFFER_PATH"


def _when(context: click.Context, parameter: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value, f"--{parameter.name}")
    except ReportError as error:
        raise click.BadParameter(f"{value!r} is not a date; {DATE_HINT}", context, parameter) from (
            error
        )


@click.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=BUFFER_PATH_ENV,
    show_envvar=True,
    help=(
        "Buffer file to read. Defaults to ~/.dexcost/buffer.db, or to the temp-folder "
        "fallback that dexcost uses when the home folder is read-only."
    ),
)
@click.option(
    "--since",
    callback=_when,
    metavar="DATE",
    help="Count events that ended at or after DATE (YYYY-MM-DD or ISO 8601, UTC).",
)
@click.option(
    "--until",
    callback=_when,
    metavar="DATE",
    help="Count events that ended before DATE (YYYY-MM-DD or ISO 8601, UTC).",
)
@click.option(
    "--by",
    "by",
    multiple=True,
    type=click.Choice(list(GROUPINGS)),
    help="Group by this; repeat for several, e.g. --by customer --by model.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format on the terminal.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML page with a daily cost chart and a table per customer.",
)
def report(
    db: Path | None,
    since: datetime | None,
    until: datetime | None,
    by: tuple[str, ...],
    output_format: str,
    html_file: Path | None,
) -> None:
    """Show exact costs from the local buffer per customer, task, model, service or day.

    Events without a price are counted apart and never added as $0.
    """
    from dexcost.cli import _pick_buffer_path
    from dexcost.report.render import render_csv, render_json, render_table

    path = _pick_buffer_path(db)
    try:
        result = build_report(path, by, since, until)
        pages = None
        if html_file is not None:
            by_customer = (
                result
                if result.by == ("customer",)
                else build_report(path, ("customer",), since, until)
            )
            daily = build_report(path, ("day",), since, until)
            pages = (by_customer, daily)
    except ReportError as error:
        raise click.ClickException(str(error)) from error
    if output_format == "json":
        click.echo(json.dumps(render_json(result), indent=2))
    elif output_format == "csv":
        click.echo(render_csv(result), nl=False)
    else:
        click.echo(render_table(result))
    if pages is not None and html_file is not None:
        from dexcost.report.html import render_html

        try:
            html_file.write_text(render_html(pages[0], pages[1], result), encoding="utf-8")
        except OSError as error:
            raise click.ClickException(
                f"cannot write {html_file}: {error.strerror}; pass --html a file in a "
                "folder you can write"
            ) from error
        click.echo(f"wrote {html_file}", err=True)
