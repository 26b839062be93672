"""genai-prices loads lazily, in the background, and its absence never breaks pricing."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dexcost.pricing import TokenUsage, price_llm, pricer, pricing_version
from dexcost.pricing import library as library_module
from dexcost.pricing.library import Library
from dexcost.semconv import UNPRICED

# The price source recorded on spans: the installed genai-prices release.
LIBRARY_SOURCE = f"genai-prices {importlib.metadata.version('genai-prices')}"

SRC = Path(__file__).resolve().parents[2] / "src"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def fresh_load_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[library_module._LoadState]:
    """Give the test its own warm-up state and card cache; the real ones are restored afterwards."""
    state = library_module._LoadState()
    monkeypatch.setattr(library_module, "_state", state)
    monkeypatch.setattr(pricer, "_entries", {})
    yield state
    state.done.wait(30)  # let a warm-up thread started by the test finish


def test_import_does_not_load_library() -> None:
    result = run_python(
        """
        import sys
        import dexcost.pricing
        from dexcost.pricing import TokenUsage, format_usd, pricing_version
        pricing_version()
        print("genai_prices" in sys.modules)
        """
    )
    assert result.stderr == ""
    assert result.stdout.strip() == "False"


def test_user_priced_call_does_not_load_library() -> None:
    result = run_python(
        """
        import sys
        from dexcost.pricing import TokenUsage, price_llm, register_model_price
        register_model_price("acme-chat", input_per_mtok="1", output_per_mtok="2")
        price = price_llm("openai", "acme-chat", TokenUsage(input_tokens=1_000_000))
        print(price.cost_usd, "genai_prices" in sys.modules)
        """
    )
    assert result.stdout.strip() == "1 False"


def test_warm_up_loads_in_background_thread() -> None:
    result = run_python(
        """
        import sys, threading, time
        from dexcost.pricing import warm_up
        from dexcost.pricing.library import wait_for_library
        started = time.perf_counter()
        warm_up()
        warm_up()
        returned_after = time.perf_counter() - started
        names = [thread.name for thread in threading.enumerate()]
        assert wait_for_library(timeout=30) is not None
        print(returned_after < 0.2, names.count("dexcost-pricing-warm-up"))
        print("genai_prices" in sys.modules, threading.active_count())
        """
    )
    assert result.stderr == ""
    returned_fast, warm_up_threads = result.stdout.split()[:2]
    assert returned_fast == "True"
    assert warm_up_threads in ("0", "1")  # 0 if the thread already finished
    assert result.stdout.split()[2:] == ["True", "1"]  # loaded; no updater thread left


def test_missing_library_unpriced_with_one_warning() -> None:
    result = run_python(
        """
        import logging, sys
        sys.modules["genai_prices"] = None  # makes every import of it fail
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logging.getLogger("dexcost.pricing").addHandler(handler)
        from dexcost.pricing import TokenUsage, price_llm
        first = price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20))
        second = price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20))
        warnings = [r for r in records if r.levelno == logging.WARNING]
        print(first.status, first.cost_usd, second.status)
        print(first.source)
        print(len(warnings), "Reinstall" in warnings[0].getMessage())
        """
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "unpriced None unpriced"
    assert lines[1] == "genai-prices unavailable"
    assert lines[2] == "1 True"


def test_old_python_unpriced_with_one_warning(
    fresh_load_state: library_module._LoadState,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(library_module, "MIN_PYTHON", (sys.version_info[0] + 1, 0))
    with caplog.at_level(logging.WARNING, logger="dexcost.pricing"):
        first = price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20))
        second = price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20))
    assert first.status == UNPRICED
    assert first.source == "genai-prices unavailable"
    assert second.status == UNPRICED
    warnings = [record for record in caplog.records if record.name == "dexcost.pricing"]
    assert len(warnings) == 1
    assert "needs Python 3.11 or newer" in warnings[0].getMessage()


def test_pricing_version_unavailable_on_old_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library_module, "MIN_PYTHON", (sys.version_info[0] + 1, 0))
    pricing_version.cache_clear()
    try:
        assert pricing_version() == "genai-prices unavailable"
    finally:
        pricing_version.cache_clear()


def test_pricing_version_names_installed_release() -> None:
    assert pricing_version() == LIBRARY_SOURCE


def test_slow_warm_up_gives_up_after_wait(
    fresh_load_state: library_module._LoadState,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh_load_state.started = True  # a warm-up that never finishes
    monkeypatch.setattr(library_module, "WAIT_SECONDS", 0.05)
    with caplog.at_level(logging.DEBUG, logger="dexcost.pricing"):
        price = price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20))
    fresh_load_state.done.set()
    assert price.status == UNPRICED
    assert price.source == LIBRARY_SOURCE
    assert "still loading" in caplog.text


def test_result_after_slow_warm_up_not_cached(
    fresh_load_state: library_module._LoadState, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_load_state.started = True
    monkeypatch.setattr(library_module, "WAIT_SECONDS", 0.05)
    price_llm("openai", "gpt-4o-2024-11-20", TokenUsage(100, 20))
    monkeypatch.setattr(library_module, "_state", library_module._LoadState())
    monkeypatch.setattr(library_module, "WAIT_SECONDS", 30.0)
    later = price_llm("openai", "gpt-4o-2024-11-20", TokenUsage(1_000, 500))
    assert later.cost_usd is not None
    fresh_load_state.done.set()


def test_first_price_starts_and_waits_for_warm_up(
    fresh_load_state: library_module._LoadState,
) -> None:
    price = price_llm("openai", "gpt-4o-mini", TokenUsage(1_200, 300))
    assert fresh_load_state.started is True
    assert price.cost_usd is not None


def test_warm_up_starts_one_thread(
    fresh_load_state: library_module._LoadState, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[threading.Thread] = []

    class CountingThread(threading.Thread):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(library_module.threading, "Thread", CountingThread)
    library_module.warm_up()
    library_module.warm_up()
    assert len(started) == 1
    assert started[0].daemon is True


def test_fork_child_restarts_unfinished_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    unfinished = library_module._LoadState()
    unfinished.started = True
    monkeypatch.setattr(library_module, "_state", unfinished)
    library_module._reset_after_fork()
    assert library_module._state is not unfinished
    assert library_module._state.started is False


def test_fork_child_keeps_finished_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    finished = library_module._LoadState()
    finished.started = True
    finished.done.set()
    monkeypatch.setattr(library_module, "_state", finished)
    library_module._reset_after_fork()
    assert library_module._state is finished


def test_update_prices_never_started(library: Library) -> None:
    from genai_prices import data_snapshot

    price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20))
    assert data_snapshot.get_snapshot().from_auto_update is False
