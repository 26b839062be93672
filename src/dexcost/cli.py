"""The ``dexcost`` command line. Each command parses its options and calls library code."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dexcost._version import __version__
from dexcost.buffer import default_buffer_path, fallback_buffer_path
from dexcost.status import StatusError, collect_status, render_status_text

BUFFER_PATH_ENV = "DEXCOST_BUFFER_PATH"


@click.group()
@click.version_option(__version__, prog_name="dexcost")
def main() -> None:
    """dexcost: price every LLM and paid API call and attribute the cost."""


def _pick_buffer_path(db: Path | None) -> Path:
    """Return ``db`` if given, else the buffer that ``dexcost.init()`` would have used.

    ``init()`` writes to a folder under the system temp folder when the home
    folder is read-only, so status reads that file when only it exists.
    """
    if db is not None:
        return db
    default = default_buffer_path()
    if not default.exists() and fallback_buffer_path().exists():
        return fallback_buffer_path()
    return default


@main.command()
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
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status(db: Path | None, as_json: bool) -> None:
    """Show what the local buffer contains, sync progress and how dexcost is set up."""
    try:
        report = collect_status(_pick_buffer_path(db))
    except StatusError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render_status_text(report))


if __name__ == "__main__":
    main()
