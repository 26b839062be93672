"""Run rotel in the foreground as the dexcost collector gateway.

Usage, with the Python that ``pip install rotel`` installed into::

    DEXCOST_API_KEY=dx_live_... python collector-config/rotel/run_gateway.py

It reads ``gateway.env`` next to this file (a ``ROTEL_*`` variable already set in the
environment wins), turns on the ``dexcost_only.py`` filter, and hands rotel the
``Authorization: Bearer`` header built from ``DEXCOST_API_KEY``. The key lives only
in the environment of the rotel process, never in a file. The script then becomes
the rotel process, so a supervisor's stop signal reaches rotel directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = HERE / "gateway.env"
FILTER = HERE / "dexcost_only.py"
KEY_VARIABLE = "DEXCOST_API_KEY"
HEADERS_VARIABLE = "ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS"
FILTER_VARIABLE = "ROTEL_OTLP_WITH_TRACE_PROCESSOR"


def read_settings(path: Path) -> dict[str, str]:
    """Return the ``KEY=VALUE`` lines of an env file, skipping blank lines and ``#`` lines."""
    settings = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, separator, value = text.partition("=")
        if not separator or not name.strip():
            raise SystemExit(f"{path}:{number}: expected NAME=VALUE, got {text!r}")
        settings[name.strip()] = value.strip()
    return settings


def agent_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the environment rotel runs with: the settings file, then ``environ``, then the key."""
    key = environ.get(KEY_VARIABLE, "").strip()
    if not key:
        raise SystemExit(
            f"{KEY_VARIABLE} is missing. Set it to the API key the gateway sends to the "
            "Control Layer (dx_live_... from the dexcost dashboard)"
        )
    if "," in key or any(character.isspace() for character in key):
        # rotel reads its header list as name=value pairs separated by commas.
        raise SystemExit(
            f"{KEY_VARIABLE} is invalid because it contains a comma or white space. Copy "
            "the key again from the dexcost dashboard"
        )
    environment = {**read_settings(SETTINGS), **environ}
    environment.setdefault(FILTER_VARIABLE, str(FILTER))
    environment[HEADERS_VARIABLE] = f"Authorization=Bearer {key}"
    return environment


def agent_path() -> Path:
    """Return the ``rotel-agent`` binary that the ``rotel`` package ships."""
    try:
        import rotel
    except ImportError:
        raise SystemExit(
            f"rotel not found for {sys.executable}. Install it with: {sys.executable} -m "
            "pip install rotel"
        ) from None
    return Path(rotel.__file__).resolve().parent / "rotel-agent"


def main() -> None:
    environment = agent_environment(os.environ)
    agent = agent_path()
    os.execve(agent, [str(agent), "start"], environment)


if __name__ == "__main__":
    main()
