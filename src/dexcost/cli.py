"""The ``dexcost`` command line. Each command parses its options and calls library code."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dexcost._version import __version__
from dexcost.buffer import default_buffer_path, fallback_buffer_path
from dexcost.pricing.describe import ModelPrices, describe_model_prices
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


if __name__ == "__main__":
    main()
