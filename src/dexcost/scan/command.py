"""The ``dexcost scan`` command: parse options, scan, print."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--generate-stubs",
    is_flag=True,
    help="Print a dexcost.record_usage() snippet for each call that needs manual recording.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
@click.option(
    "--fail-on-untracked",
    is_flag=True,
    help="Exit with status 1 when a call needs manual recording (for CI).",
)
@click.option(
    "--catalog",
    "catalog_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Service catalog JSON to match URLs against, instead of the bundled one.",
)
def scan(
    path: Path,
    generate_stubs: bool,
    as_json: bool,
    fail_on_untracked: bool,
    catalog_file: Path | None,
) -> None:
    """Find the calls in PATH that cost money and whether dexcost records them.

    Reads the source with Python's parser only: the code is never imported or run.
    """
    from dexcost.scan import CatalogError, load_catalog, scan_path
    from dexcost.scan.render import render_json, render_text

    try:
        catalog = load_catalog(catalog_file)
    except CatalogError as error:
        raise click.ClickException(str(error)) from error
    result = scan_path(path, catalog)
    if as_json:
        click.echo(json.dumps(render_json(result), indent=2))
    else:
        click.echo(render_text(result, stubs=generate_stubs))
    if fail_on_untracked and result.untracked:
        raise SystemExit(1)
