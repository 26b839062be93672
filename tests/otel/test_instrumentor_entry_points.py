"""dexcost's per-library OpenTelemetry instrumentors and their entry points.

The end-to-end tests run ``entry_points_app.py`` under ``opentelemetry-instrument`` in
a subprocess, against fake OpenAI and Anthropic servers on 127.0.0.1, and read the
buffer it leaves behind. The entry points are read from the installed metadata, so
the package must be installed (``pip install -e .``) from this checkout.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sqlite3
import subprocess
import sys
import venv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
from packaging.requirements import Requirement

import dexcost
from dexcost import distro, http, otel_instrumentors, runtime
from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage
from dexcost.instrumentation.registry import ALL_SUPPORTED_INSTRUMENTS, LIBRARIES

APP = Path(__file__).with_name("entry_points_app.py")
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
# gpt-4o-mini: 1200 input tokens at $0.15/M plus 300 output tokens at $0.60/M.
OPENAI_COST = Decimal("0.00036")
# claude-sonnet-4: 1000 input tokens at $3/M plus 300 output tokens at $15/M.
ANTHROPIC_COST = Decimal("0.0075")

needs_instrument = pytest.mark.skipif(
    not INSTRUMENT.exists(), reason="opentelemetry-instrument is not installed"
)


def dexcost_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {
        entry_point.name: entry_point
        for entry_point in importlib.metadata.entry_points(group="opentelemetry_instrumentor")
        if entry_point.value.startswith("dexcost.")
    }


# --- entry points in the installed metadata ---


def test_every_registry_library_has_an_entry_point() -> None:
    expected = {f"dexcost_{name}" for name in ALL_SUPPORTED_INSTRUMENTS} | {"dexcost_http"}
    # Fails after an entry point was added to pyproject.toml but not installed: the
    # loader reads the installed metadata, so reinstall the package (pip install -e .).
    assert set(dexcost_entry_points()) == expected


@pytest.mark.parametrize(
    "instrumentor", otel_instrumentors.INSTRUMENTORS, ids=lambda cls: cls.library
)
def test_entry_point_loads_its_instrumentor(
    instrumentor: type[otel_instrumentors._DexcostInstrumentor],
) -> None:
    entry_point = dexcost_entry_points().get(instrumentor.entry_point_name())
    assert entry_point is not None, "not in the installed metadata: run pip install -e ."
    assert entry_point.load() is instrumentor


def test_instrumentor_classes_cover_the_registry() -> None:
    libraries = [cls.library for cls in otel_instrumentors.INSTRUMENTORS]
    assert sorted(libraries) == sorted([*ALL_SUPPORTED_INSTRUMENTS, runtime.HTTP])


def test_distribution_declares_no_instruments_extra() -> None:
    # opentelemetry-instrument checks this extra for the whole distribution: one SDK
    # missing from it would skip every dexcost instrumentor.
    dist = importlib.metadata.distribution("dexcost")
    extras = [Requirement(line).marker for line in dist.requires or ()]
    assert not any(marker is not None and "instruments" in str(marker) for marker in extras)
    assert get_dist_dependency_conflicts(dist) is None


class DistributionWithExtra:
    """The metadata a distribution declaring its SDKs in an ``instruments`` extra would have."""

    def __init__(self, requirements: list[str]) -> None:
        self.requires = [f"{text}; extra == 'instruments'" for text in requirements]


def test_instruments_extra_skips_all_on_one_missing() -> None:
    # Why the distribution declares no such extra: opentelemetry-instrument runs this
    # check once per entry point, on the whole distribution, so a single missing SDK
    # gives every dexcost entry point the same conflict.
    installed = [f"{spec.distribution} {spec.supported_range}" for spec in LIBRARIES.values()]
    assert get_dist_dependency_conflicts(DistributionWithExtra(installed)) is None  # type: ignore[arg-type]
    missing = DistributionWithExtra([*installed, "dexcost-no-such-sdk >=1"])
    conflict = get_dist_dependency_conflicts(missing)  # type: ignore[arg-type]
    assert conflict is not None
    assert str(conflict.required).startswith("dexcost-no-such-sdk")


@pytest.mark.parametrize("name", ALL_SUPPORTED_INSTRUMENTS)
def test_dependencies_give_the_registry_range(name: str) -> None:
    cls = next(c for c in otel_instrumentors.INSTRUMENTORS if c.library == name)
    (requirement,) = (Requirement(text) for text in cls().instrumentation_dependencies())
    spec = LIBRARIES[name]
    assert requirement.name == spec.distribution
    assert requirement.specifier.contains(".".join(map(str, spec.min_version)))
    assert not requirement.specifier.contains(".".join(map(str, spec.max_version_exclusive)))


def test_http_instrumentor_needs_no_library() -> None:
    assert otel_instrumentors.HTTPCostInstrumentor().instrumentation_dependencies() == ()


# --- OTEL_PYTHON_DISABLED_INSTRUMENTATIONS in the distro ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", set()),
        ("dexcost_openai", {"openai"}),
        (" dexcost_openai , requests,dexcost_http", {"openai", "http"}),
        # Other packages' names and unknown dexcost names do not touch dexcost.
        ("openai,dexcost_nothing", set()),
        ("*", {*ALL_SUPPORTED_INSTRUMENTS, "http"}),
    ],
)
def test_disabled_from_env(monkeypatch: pytest.MonkeyPatch, value: str, expected: set[str]) -> None:
    monkeypatch.setenv(distro.DISABLED_INSTRUMENTATIONS_ENV, value)
    assert distro.disabled_from_env() == expected


def test_distro_leaves_disabled_library_out(
    monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", str(buffer_path))
    monkeypatch.setenv(distro.DISABLED_INSTRUMENTATIONS_ENV, "dexcost_openai")
    assert distro.start_from_env()
    started = runtime.current_runtime()
    assert started is not None
    assert started.config.auto_instrument == [n for n in ALL_SUPPORTED_INSTRUMENTS if n != "openai"]
    assert started.config.track_http is True


def test_distro_keeps_auto_instrument_choice(
    monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", str(buffer_path))
    monkeypatch.setenv(distro.AUTO_INSTRUMENT_ENV, "openai,anthropic")
    monkeypatch.setenv(distro.DISABLED_INSTRUMENTATIONS_ENV, "dexcost_anthropic,dexcost_http")
    assert distro.start_from_env()
    started = runtime.current_runtime()
    assert started is not None
    assert started.config.auto_instrument == ["openai"]
    assert started.config.track_http is False


def test_distro_with_wildcard_patches_nothing(
    monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", str(buffer_path))
    monkeypatch.setenv(distro.DISABLED_INSTRUMENTATIONS_ENV, "*")
    assert distro.start_from_env()
    started = runtime.current_runtime()
    assert started is not None
    assert (started.config.auto_instrument, started.config.track_http) == ([], False)


# --- instrument() and uninstrument() in this process ---


@pytest.fixture
def reset_instrumentors() -> Any:
    """Leave every instrumentor uninstrumented: each class is a process-wide singleton."""
    yield
    for cls in otel_instrumentors.INSTRUMENTORS:
        cls()._is_instrumented_by_opentelemetry = False


def chat_completion() -> None:
    fake = FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))
    with openai.OpenAI(
        api_key="sk-test",
        base_url="http://fake.test/v1",
        http_client=httpx2.Client(transport=fake.httpx2_transport()),
        max_retries=0,
    ) as client:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )


@pytest.mark.usefixtures("reset_instrumentors")
def test_uninstrument_removes_only_its_library(buffer_path: Path, stored: Any) -> None:
    import anthropic  # noqa: F401

    dexcost.init(storage="local", buffer_path=str(buffer_path))
    instrumentor = otel_instrumentors.OpenAIInstrumentor()
    instrumentor.instrument(skip_dep_check=True)
    assert {"anthropic", "openai"} <= set(runtime.instrumented_libraries())

    instrumentor.uninstrument()
    chat_completion()

    assert "openai" not in runtime.instrumented_libraries()
    assert "anthropic" in runtime.instrumented_libraries()
    assert stored("llm_call") == []


@pytest.mark.usefixtures("reset_instrumentors")
def test_instrument_again_records_once(buffer_path: Path, stored: Any) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    instrumentor = otel_instrumentors.OpenAIInstrumentor()
    instrumentor.instrument(skip_dep_check=True)
    instrumentor.uninstrument()
    instrumentor.instrument(skip_dep_check=True)
    # A second init() in code patches the same methods again: still one record per call.
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    chat_completion()

    (call,) = stored("llm_call")
    assert Decimal(call["cost_usd"]) == OPENAI_COST


@pytest.mark.usefixtures("reset_instrumentors")
def test_instrument_keeps_the_configuration(buffer_path: Path) -> None:
    import anthropic  # noqa: F401

    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    otel_instrumentors.AnthropicInstrumentor().instrument(skip_dep_check=True)
    assert runtime.instrumented_libraries() == ["openai"]


@pytest.mark.usefixtures("reset_instrumentors")
def test_http_instrumentor_switches_capture(buffer_path: Path) -> None:
    import requests  # noqa: F401

    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    assert "requests" in http.captured_libraries()
    instrumentor = otel_instrumentors.HTTPCostInstrumentor()
    instrumentor.instrument()
    instrumentor.uninstrument()
    assert http.captured_libraries() == []
    instrumentor.instrument()
    assert "requests" in http.captured_libraries()


@pytest.mark.usefixtures("reset_instrumentors")
def test_instrument_before_init_starts_nothing(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otel_instrumentors, "_logged_not_started", False)
    with caplog.at_level(logging.DEBUG, logger="dexcost.otel_instrumentors"):
        otel_instrumentors.OpenAIInstrumentor().instrument(skip_dep_check=True)
        otel_instrumentors.AnthropicInstrumentor().instrument(skip_dep_check=True)
    assert runtime.current_runtime() is None
    assert runtime.instrumented_libraries() == []
    (record,) = caplog.records
    assert "dexcost is not started" in record.getMessage()


# --- end to end under opentelemetry-instrument ---


@dataclass
class Run:
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    stderr: str


def run_app(
    tmp_path: Path, *arguments: str, python: str = sys.executable, **environment: str
) -> Run:
    buffer = tmp_path / "buffer.db"
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "OTEL_PYTHON_DISTRO": "dexcost",
        "OTEL_PYTHON_CONFIGURATOR": "dexcost",
        "DEXCOST_BUFFER_PATH": str(buffer),
        **environment,
    }
    instrument = Path(python).with_name("opentelemetry-instrument")
    result = subprocess.run(
        [str(instrument), python, str(APP), *arguments],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rows: list[dict[str, Any]] = []
    if buffer.exists():
        connection = sqlite3.connect(buffer)
        connection.row_factory = sqlite3.Row
        try:
            rows = [dict(row) for row in connection.execute("SELECT * FROM spans ORDER BY id")]
        finally:
            connection.close()
    return Run(summary, rows, result.stderr)


def unexpected_output(run: Run) -> list[str]:
    """Return the lines of stderr, less the loader's note on the configurator it skipped.

    Both dexcost and opentelemetry-distro register a configurator; the one not chosen
    gets that note whatever dexcost does.
    """
    return [
        line
        for line in run.stderr.splitlines()
        if not (
            line.startswith("Configuration of ")
            and ("OTEL_PYTHON_CONFIGURATOR" in line or "already loaded" in line)
        )
    ]


def costs(run: Run) -> dict[str, Decimal]:
    return {
        row["provider"]: Decimal(row["cost_usd"])
        for row in run.rows
        if row["event_type"] == "llm_call"
    }


@needs_instrument
def test_disabled_openai_keeps_anthropic_priced(tmp_path: Path) -> None:
    run = run_app(tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="dexcost_openai")

    assert run.summary["started_by_auto_launch"] is True
    assert run.summary["requests"] == {"openai": 1, "anthropic": 1}
    assert "openai" not in run.summary["instrumented"]
    assert costs(run) == {"anthropic": ANTHROPIC_COST}


@needs_instrument
def test_nothing_disabled_prices_both(tmp_path: Path) -> None:
    run = run_app(tmp_path)

    assert costs(run) == {"openai": OPENAI_COST, "anthropic": ANTHROPIC_COST}
    assert unexpected_output(run) == []


@needs_instrument
def test_wildcard_disables_every_dexcost_patch(tmp_path: Path) -> None:
    run = run_app(tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*")

    assert run.summary["started_by_auto_launch"] is True
    assert run.summary["instrumented"] == []
    assert run.summary["http_captured"] == []
    assert costs(run) == {}


@needs_instrument
def test_init_in_code_after_distro_prices_once(tmp_path: Path) -> None:
    run = run_app(tmp_path, "init")

    assert run.summary["started_by_auto_launch"] is True
    assert run.summary["requests"] == {"openai": 1, "anthropic": 1}
    assert len([row for row in run.rows if row["event_type"] == "llm_call"]) == 2
    assert costs(run) == {"openai": OPENAI_COST, "anthropic": ANTHROPIC_COST}


PLAIN_DISTRO = {
    "OTEL_PYTHON_DISTRO": "distro",
    "OTEL_PYTHON_CONFIGURATOR": "configurator",
    # opentelemetry-distro defaults to OTLP exporters; nothing may leave the machine.
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


@needs_instrument
def test_other_distro_does_not_start_dexcost(tmp_path: Path) -> None:
    run = run_app(tmp_path, **PLAIN_DISTRO)

    assert run.summary["started_by_auto_launch"] is False
    assert run.summary["instrumented"] == []
    assert run.rows == []
    assert unexpected_output(run) == []


@needs_instrument
def test_other_distro_then_init_in_code_prices_once(tmp_path: Path) -> None:
    run = run_app(tmp_path, "init", **PLAIN_DISTRO)

    assert run.summary["started_by_auto_launch"] is False
    assert costs(run) == {"openai": OPENAI_COST, "anthropic": ANTHROPIC_COST}
    assert len([row for row in run.rows if row["event_type"] == "llm_call"]) == 2


def environment_without(tmp_path: Path, hidden: set[str]) -> str:
    """Build a virtual environment with this one's packages except ``hidden``; return its python.

    Each kept entry of site-packages is linked, not copied.
    """
    folder = tmp_path / "venv"
    venv.create(folder, with_pip=False, symlinks=True)
    (site_packages,) = (folder / "lib").glob("python*/site-packages")
    hidden_entries: set[str] = set()
    for name in hidden:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            hidden_entries.add(file.parts[0])
    source = Path(openai.__file__).parent.parent
    for entry in source.iterdir():
        if entry.name not in hidden_entries and not (site_packages / entry.name).exists():
            (site_packages / entry.name).symlink_to(entry)
    (folder / "bin" / "opentelemetry-instrument").write_text(
        f"#!{folder / 'bin' / 'python'}\n"
        "from opentelemetry.instrumentation.auto_instrumentation import run\n"
        "run()\n"
    )
    (folder / "bin" / "opentelemetry-instrument").chmod(0o755)
    return str(folder / "bin" / "python")


@needs_instrument
def test_missing_library_is_skipped_cleanly(tmp_path: Path) -> None:
    python = environment_without(tmp_path, {"anthropic"})
    check = subprocess.run(
        [python, "-c", "import importlib.util; print(importlib.util.find_spec('anthropic'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "None"

    run = run_app(tmp_path, "openai", python=python)

    assert run.summary["started_by_auto_launch"] is True
    assert run.summary["instrumented"] == ["openai"]
    assert costs(run) == {"openai": OPENAI_COST}
    assert unexpected_output(run) == []
