"""The ``dexcost`` command line. Each command parses its options and calls library code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import click

from dexcost._version import __version__
from dexcost.buffer import (
    Buffer,
    BufferOpenError,
    default_buffer_path,
    fallback_buffer_path,
    read_rate_rows,
    resolve_buffer_path,
)
from dexcost.pricing.describe import ModelPrices, describe_model_prices
from dexcost.pricing.money import format_usd
from dexcost.rates.entries import ModelRate, ServiceRate
from dexcost.rates.registry import StoredRates, model_row, rates_from_rows, service_row
from dexcost.report.command import report
from dexcost.scan.command import scan
from dexcost.status import StatusError, collect_status, render_status_text

BUFFER_PATH_ENV = "DEXCOST_BUFFER_PATH"


@click.group()
@click.version_option(__version__, prog_name="dexcost")
def main() -> None:
    """dexcost: price every LLM and paid API call and attribute the cost."""


main.add_command(scan)
main.add_command(report)


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


@main.command()
@click.argument("model")
@click.option(
    "--provider",
    default="",
    help=(
        "Provider as dexcost records it (gen_ai.provider.name), e.g. openai, anthropic, "
        "aws.bedrock, gcp.gemini. Without it the price table picks the provider from the "
        "model name."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print the rates as one JSON object.")
def prices(model: str, provider: str, as_json: bool) -> None:
    """Show the rates dexcost applies to MODEL and where they come from."""
    if not model.strip():
        raise click.BadParameter("give a model name such as gpt-4o-mini", param_hint="MODEL")
    found = describe_model_prices(provider.strip().lower(), model)
    if as_json:
        click.echo(json.dumps(_prices_json(found), indent=2))
    else:
        click.echo(_prices_text(found))
    if found.reason is not None:
        raise SystemExit(1)


def _per_label(per: int) -> str:
    labels = {1: "each", 1_000: "per 1K", 1_000_000: "per 1M"}
    return labels.get(per, f"per {per:,}")


def _prices_text(found: ModelPrices) -> str:
    provider = found.provider or "any provider"
    if found.reason is not None:
        return (
            f"{found.model} ({provider}): {found.reason}. Its calls are recorded unpriced "
            "unless you register a price with dexcost.register_model_price()."
        )
    lines = [
        f"{found.model} ({provider}): matched {found.matched_model} in {found.source}",
        "USD rates; a tier rate applies to the whole request once its input exceeds the tier.",
    ]
    for context in found.contexts:
        lines.append(f"{context.name}:")
        for rate in context.rates:
            tiers = "".join(
                f", above {start:,} input tokens {value}" for start, value in rate.tiers
            )
            lines.append(f"  {rate.price_key:<28} {rate.rate} {_per_label(rate.per)}{tiers}")
    return "\n".join(lines)


def _prices_json(found: ModelPrices) -> dict[str, object]:
    return {
        "model": found.model,
        "provider": found.provider or None,
        "matched_model": found.matched_model,
        "source": found.source,
        "priced": found.reason is None,
        "reason": found.reason,
        "contexts": [
            {
                "name": context.name,
                "rates": [
                    {
                        "unit": rate.price_key,
                        "per": rate.per,
                        "usd": str(rate.rate),
                        "tiers": [
                            {"above_input_tokens": start, "usd": str(value)}
                            for start, value in rate.tiers
                        ],
                    }
                    for rate in context.rates
                ],
            }
            for context in found.contexts
        ],
    }


@main.command()
@click.option("--list", "list_rates", is_flag=True, help="Print the stored rates.")
@click.option(
    "--import",
    "import_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help=(
        "Store the rates of a YAML file (- reads standard input), replacing stored "
        "entries with the same name and keeping the others."
    ),
)
@click.option(
    "--export",
    "export_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the stored rates to a YAML file that --import reads (- writes to the terminal).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=BUFFER_PATH_ENV,
    show_envvar=True,
    help=(
        "Buffer file that contains the rates. Defaults to ~/.dexcost/buffer.db, or to the "
        "temp-folder fallback that dexcost uses when the home folder is read-only."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="With --list, print one JSON object.")
def rates(
    list_rates: bool,
    import_file: Path | None,
    export_file: Path | None,
    db: Path | None,
    as_json: bool,
) -> None:
    """Manage the USD rates for paid APIs and LLM models stored in the buffer.

    dexcost.init() loads them when the application starts. Prices registered in code
    with dexcost.register_model_price() win over them.
    """
    chosen = [list_rates, import_file is not None, export_file is not None]
    if sum(chosen) != 1:
        raise click.UsageError("pass exactly one of --list, --import FILE or --export FILE")
    if as_json and not list_rates:
        raise click.UsageError("--json works with --list only")
    if import_file is not None:
        click.echo(_import_rates(import_file, db))
        return
    path = _pick_buffer_path(db)
    stored = _read_stored_rates(path)
    if export_file is None:
        output = json.dumps(_rates_json(path, stored), indent=2) if as_json else None
        click.echo(output or _rates_text(path, stored))
        return
    _export_rates(stored, export_file)
    if str(export_file) != "-":
        click.echo(
            f"exported {len(stored.services)} service rate(s) and {len(stored.models)} "
            f"model price(s) from {path} to {export_file}"
        )


def _import_rates(source: Path, db: Path | None) -> str:
    """Store the rates of ``source`` in ``db`` and return the summary line.

    Without ``db`` the buffer is the one ``dexcost.init()`` picks, so the rates reach
    the application: the home folder's, or the temp-folder fallback when home is
    read-only. Reading picks an existing fallback instead, see ``_pick_buffer_path``.
    """
    from dexcost.rates.rate_file import RateFileError, parse_rate_file

    name = "<stdin>" if str(source) == "-" else str(source)
    try:
        with click.open_file(str(source), encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        raise click.ClickException(f"cannot read rate file {name}: {error}") from error
    try:
        rate_file = parse_rate_file(text, name)
    except RateFileError as error:
        raise click.ClickException(f"{error}. Nothing was imported") from error
    try:
        path = resolve_buffer_path(db)
        with Buffer.open(path) as buffer:
            buffer.merge_rates(
                [service_row(rate) for rate in rate_file.services],
                [model_row(rate) for rate in rate_file.models],
            )
            stored = rates_from_rows(buffer.rate_rows())
    except (BufferOpenError, ValueError, OSError) as error:
        raise click.ClickException(f"{error}. Nothing was imported") from error
    return (
        f"imported {len(rate_file.services)} service rate(s) and {len(rate_file.models)} "
        f"model price(s) from {name} into {path}, which now holds "
        f"{len(stored.services)} service rate(s) and {len(stored.models)} model price(s). "
        "Applications load them at dexcost.init(), so restart running ones"
    )


def _read_stored_rates(path: Path) -> StoredRates:
    try:
        stored = rates_from_rows(read_rate_rows(path))
    except BufferOpenError as error:
        raise click.ClickException(str(error)) from error
    for problem in stored.skipped:
        click.echo(f"warning: skipped invalid stored rate {problem}", err=True)
    return stored


def _export_rates(stored: StoredRates, target: Path) -> None:
    from dexcost.rates.rate_file import render_rate_file

    text = render_rate_file(stored.services, stored.models)
    try:
        with click.open_file(str(target), "w", encoding="utf-8", atomic=str(target) != "-") as out:
            out.write(text)
    except OSError as error:
        raise click.ClickException(f"cannot write {target}: {error}") from error


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _rates_text(path: Path, stored: StoredRates) -> str:
    lines = [f"buffer: {path}", f"service rates ({len(stored.services)}), USD:"]
    if stored.services:
        lines += _table(
            ("service", "per", "cost_usd"),
            [(rate.service, rate.per, format_usd(rate.cost_usd)) for rate in stored.services],
        )
    lines.append(f"model prices ({len(stored.models)}), USD per million tokens:")
    if stored.models:
        lines += _table(
            ("model", "provider", "input", "output", "cache read", "cache write"),
            [_model_cells(rate) for rate in stored.models],
        )
    if not stored.services and not stored.models:
        lines.append("No rates stored. Add some with: dexcost rates --import FILE")
    return "\n".join(lines)


def _model_cells(rate: ModelRate) -> tuple[str, ...]:
    def text(value: Decimal | None) -> str:
        return "-" if value is None else format_usd(value)

    return (
        rate.model,
        rate.provider or "any",
        text(rate.input_per_mtok),
        text(rate.output_per_mtok),
        text(rate.cache_read_per_mtok),
        text(rate.cache_write_per_mtok),
    )


def _rates_json(path: Path, stored: StoredRates) -> dict[str, object]:
    return {
        "db_path": str(path),
        "rates": [_service_json(rate) for rate in stored.services],
        "models": [_model_json(rate) for rate in stored.models],
        "skipped": stored.skipped,
    }


def _service_json(rate: ServiceRate) -> dict[str, object]:
    return {"service": rate.service, "per": rate.per, "cost_usd": format_usd(rate.cost_usd)}


def _model_json(rate: ModelRate) -> dict[str, object]:
    entry: dict[str, object] = {"model": rate.model, "provider": rate.provider}
    entry.update({name: format_usd(value) for name, value in rate.prices().items()})
    return entry


if __name__ == "__main__":
    main()
