"""dexcost's method wrappers: once per method, and safe under other libraries' wrappers."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import wrapt

from dexcost.instrumentation.registry import Instrumentor, find_gate


class Resource:
    def create(self, value: int) -> int:
        return value * 2


class _Recorder(Instrumentor):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def _patch(self, module: ModuleType) -> None:
        self._wrap(Resource, "create", self._record)

    def _record(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        self.calls.append(args[0])
        return wrapped(*args, **kwargs)


def _host_wrapper(seen: list[int]) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(args[0])
        return wrapped(*args, **kwargs)

    return wrapper


def test_wrap_records_and_restores() -> None:
    original = Resource.__dict__["create"]
    recorder = _Recorder()
    recorder.instrument(ModuleType("sdk"))

    assert Resource().create(3) == 6
    assert recorder.calls == [3]
    recorder.uninstrument()
    assert Resource.__dict__["create"] is original


def test_second_instrumentor_does_not_wrap_again() -> None:
    first, second = _Recorder(), _Recorder()
    first.instrument(ModuleType("sdk"))
    second.instrument(ModuleType("sdk"))
    try:
        Resource().create(1)
        assert first.calls == [1]
        assert second.calls == []
    finally:
        second.uninstrument()
        first.uninstrument()
    assert find_gate(Resource.__dict__["create"]) is None


def test_host_wrapper_below_keeps_working() -> None:
    # The host instrumented the SDK first; dexcost goes inside its wrapper and records.
    original = Resource.__dict__["create"]
    host_calls: list[int] = []
    wrapt.wrap_function_wrapper(Resource, "create", _host_wrapper(host_calls))
    recorder = _Recorder()
    recorder.instrument(ModuleType("sdk"))
    try:
        assert Resource().create(2) == 4
        assert recorder.calls == [2]
        assert host_calls == [2]
        recorder.uninstrument()
        Resource().create(5)
        assert host_calls == [2, 5]
        assert recorder.calls == [2]
    finally:
        Resource.create = original  # type: ignore[method-assign]


def test_host_wrapper_on_top_survives_uninstrument() -> None:
    # dexcost wrapped first and the host wrapped on top: shutting dexcost down must not
    # remove the host's wrapper, so dexcost's own turns into a pass-through.
    original = Resource.__dict__["create"]
    recorder = _Recorder()
    recorder.instrument(ModuleType("sdk"))
    host_calls: list[int] = []
    wrapt.wrap_function_wrapper(Resource, "create", _host_wrapper(host_calls))
    try:
        recorder.uninstrument()
        assert Resource().create(4) == 8
        assert host_calls == [4]
        assert recorder.calls == []

        again = _Recorder()
        again.instrument(ModuleType("sdk"))
        Resource().create(6)
        assert again.calls == [6]
        assert host_calls == [4, 6]
        again.uninstrument()
    finally:
        Resource.create = original  # type: ignore[method-assign]


def test_wrapper_goes_inside_host_wrapper() -> None:
    # Inside the host's wrapper, dexcost receives the SDK's own arguments and result, not
    # what the host's wrapper turns them into (a proxy of a stream, for instance).
    original = Resource.__dict__["create"]

    def doubling_host(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return ("host", wrapped(*args, **kwargs))

    wrapt.wrap_function_wrapper(Resource, "create", doubling_host)
    host = Resource.__dict__["create"]
    results: list[Any] = []

    class _ResultRecorder(_Recorder):
        def _record(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            result = wrapped(*args, **kwargs)
            results.append(result)
            return result

    recorder = _ResultRecorder()
    recorder.instrument(ModuleType("sdk"))
    try:
        assert Resource.__dict__["create"] is host
        assert Resource().create(3) == ("host", 6)
        assert results == [6]
        recorder.uninstrument()
        assert host.__wrapped__ is original
        assert Resource().create(4) == ("host", 8)
        assert results == [6]
    finally:
        Resource.create = original  # type: ignore[method-assign]


def test_host_unwrap_keeps_dexcost_wrapper() -> None:
    # The host removes its wrapper the way OpenTelemetry's unwrap() does: the method
    # becomes whatever the wrapper held, which is dexcost's wrapper, still recording.
    original = Resource.__dict__["create"]
    host_calls: list[int] = []
    wrapt.wrap_function_wrapper(Resource, "create", _host_wrapper(host_calls))
    recorder = _Recorder()
    recorder.instrument(ModuleType("sdk"))
    try:
        Resource.create = Resource.__dict__["create"].__wrapped__  # type: ignore[method-assign]
        assert Resource().create(5) == 10
        assert recorder.calls == [5]
        assert host_calls == []
        recorder.uninstrument()
        assert Resource.__dict__["create"] is original
    finally:
        Resource.create = original  # type: ignore[method-assign]
