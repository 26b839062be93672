"""The running dexcost: ``init()``, ``flush()``, ``shutdown()`` and what they own.

A :class:`Runtime` contains one configuration with its private TracerProvider, span
processors and session tasks. The provider is never set as the global one, so the
application's own OpenTelemetry setup (provider, sampler, exporters) is untouched, and
its ALWAYS_ON sampler means no cost is ever sampled away. Calling ``init()`` again
builds a new runtime, swaps it in, then flushes and stops the old one.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer

from dexcost import events, pricing, propagation, semconv
from dexcost import http as http_capture
from dexcost._version import __version__
from dexcost.attribution import Privacy, set_privacy
from dexcost.buffer import Buffer, BufferOpenError, resolve_buffer_path
from dexcost.config import DexcostConfig
from dexcost.console import ConsoleSpanPrinter
from dexcost.events import DeferredEvent
from dexcost.instrumentation.registry import ALL_SUPPORTED_INSTRUMENTS, InstrumentationManager
from dexcost.processor import DexcostSpanProcessor
from dexcost.rates import registry as rates_registry
from dexcost.retry import RetryHeuristicEngine
from dexcost.sync import create_sync_worker
from dexcost.tasks import SessionTasks
from dexcost.threads import patch_threads, unpatch_threads

logger = logging.getLogger(__name__)

# How long the exit hook may spend storing queued events before the process exits.
EXIT_FLUSH_TIMEOUT_SECONDS = 3.0
# The name of HTTP cost capture (``track_http``) in set_library_patched().
HTTP = "http"
# Deferred events waiting, and the bytes of reply bodies they keep, past which the
# recording thread works them out itself. This bounds their memory when the writer
# falls behind, for example while another process holds the buffer's lock.
MAX_UNSETTLED = 4096
MAX_UNSETTLED_BYTES = 16 * 1024 * 1024


class Runtime:
    """Everything one ``init()`` call set up.

    ``span_processor`` replaces the SQLite buffer: the runtime then opens no file, has
    no stored rates and uploads nothing (``dexcost.testing`` records events in memory).
    """

    def __init__(
        self, config: DexcostConfig, *, span_processor: SpanProcessor | None = None
    ) -> None:
        self.config = config
        self.redacted_fields = frozenset(config.redact_fields or ())
        # Libraries (and HTTP) whose patch an OpenTelemetry instrumentor's uninstrument()
        # removed. The configuration still names them, but they stay unpatched.
        self.switched_off: set[str] = set()
        self.buffer_path: Path | None = None
        self.processor: SpanProcessor
        if span_processor is None:
            self.buffer_path = resolve_buffer_path(config.buffer_path)
            self.stored_rates = _check_buffer(self.buffer_path)
            self.sync_worker = create_sync_worker(config, self.buffer_path)
            self.processor = DexcostSpanProcessor(self.buffer_path)
        else:
            self.stored_rates = rates_registry.StoredRates()
            self.sync_worker = None
            self.processor = span_processor
        # Event spans are built finished and go straight to this processor chain; task
        # spans go through the provider's tracer, which feeds the same chain.
        self.span_processor = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        self.id_generator = RandomIdGenerator()
        self.resource = Resource.create({"dexcost.version": __version__})
        self.scope = InstrumentationScope(semconv.SCOPE_NAME, __version__)
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=self.resource,
            shutdown_on_exit=False,
            active_span_processor=self.span_processor,
            id_generator=self.id_generator,
        )
        # OTEL_SDK_DISABLED=true switches off the application's tracing, not cost recording.
        # The SDK stores it in this private flag and would then give tasks a no-op tracer.
        self.provider._disabled = False
        self.provider.add_span_processor(self.processor)
        if self.sync_worker is not None:
            # Also a span processor: a process forked after init() starts its own
            # upload thread when it records its first span.
            self.provider.add_span_processor(self.sync_worker)
            self.sync_worker.start()
        if config.is_dev:
            self.provider.add_span_processor(ConsoleSpanPrinter())
        if config.export_to_otel:
            from dexcost.otel_export import HostExportProcessor

            self.provider.add_span_processor(HostExportProcessor(self.provider))
        # Where emit_event hands events whose span the buffer's writer thread builds.
        # Only when the buffer is the only reader of event spans: a console, an export
        # or an in-memory processor reads each span as it ends, so then every event's
        # span is built on the thread that records it.
        self.event_sink: DexcostSpanProcessor | None = None
        if (
            isinstance(self.processor, DexcostSpanProcessor)
            and not config.is_dev
            and not config.export_to_otel
        ):
            self.event_sink = self.processor
        self.tracer: Tracer = self.provider.get_tracer(semconv.SCOPE_NAME, __version__)
        self.sessions = SessionTasks(self)
        # Set when shutdown() ends the session tasks: a session task started for a
        # request that finishes later is ended at once, so its row is stored too.
        self.stopped = False
        self.retry_engine: RetryHeuristicEngine | None = None
        if config.enable_retry_heuristics:
            self.retry_engine = RetryHeuristicEngine(config.retry_window, config.retry_threshold)

    def defer(self, event: DeferredEvent, held_bytes: int = 0) -> None:
        """Queue ``event`` for the buffer, to be worked out off the caller's thread.

        Only when :attr:`event_sink` is set: nothing else reads event spans as they end.
        ``held_bytes`` is the size of the bodies ``event`` keeps until then.
        """
        waiting, waiting_bytes = events.add_unsettled(event, held_bytes)
        self.event_sink.on_event(event)  # type: ignore[union-attr]
        worker = self.sync_worker
        if worker is not None:
            worker.ensure_started()
        if waiting > MAX_UNSETTLED or waiting_bytes > MAX_UNSETTLED_BYTES:
            events.settle()

    def flush(self, timeout: float) -> bool:
        events.settle()
        self.sessions.end_idle()
        return self.processor.force_flush(int(timeout * 1000))

    def shutdown(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        events.settle()
        # Before end_all(): a session task started while it runs is ended at once.
        self.stopped = True
        self.sessions.end_all()
        if isinstance(self.processor, DexcostSpanProcessor):
            self.processor.shutdown(int(timeout * 1000))
        else:
            self.processor.shutdown()
        if self.sync_worker is not None:
            # Uploads share the same time budget; what is left stays for the next start.
            self.sync_worker.shutdown(int(max(deadline - time.monotonic(), 0.0) * 1000))
        # The provider's other processors (the dev console) hold no data.
        self.provider.shutdown()


def _check_buffer(path: Path) -> rates_registry.StoredRates:
    """Open the buffer once and return its stored rates.

    Opening it here makes a file that cannot be a dexcost buffer fail init().
    Without this, a wrong ``buffer_path`` would only show up later, on the writer
    thread, as events that never get stored. A rate registry that cannot be read is
    logged and left out, so it does not fail init().
    """
    try:
        buffer = Buffer.open(path)
    except BufferOpenError as error:
        raise ValueError(f"buffer_path: {error}") from None
    with buffer:
        return rates_registry.read_for_init(buffer)


_lock = threading.RLock()
_runtime: Runtime | None = None
_instrumentation = InstrumentationManager()
_atexit_registered = False


def current_runtime() -> Runtime | None:
    """Return the active runtime, or None before ``init()`` and after ``shutdown()``."""
    return _runtime


def require_runtime() -> Runtime:
    runtime = _runtime
    if runtime is None:
        raise RuntimeError(
            "dexcost is not initialised; call dexcost.init() once at start-up "
            "(dexcost.init(environment='development') prints costs without an API key)"
        )
    return runtime


def init(
    api_key: str | None = None,
    *,
    auto_instrument: Sequence[str] | None = None,
    track_http: bool = True,
    environment: str | None = None,
    batch_size: int = 100,
    flush_interval: float = 5.0,
    redact_fields: Sequence[str] | None = None,
    hash_customer_id: bool = False,
    storage: str | None = None,
    buffer_path: str | None = None,
    service_catalog_url: str | None = None,
    enable_retry_heuristics: bool = False,
    retry_heuristic_window: float | None = None,
    retry_heuristic_threshold: float | None = None,
    propagate_context_to: Sequence[str] | None = None,
    trust_inbound_context: bool = False,
    export_to_otel: bool | None = None,
    price_genai_spans: bool | None = None,
) -> DexcostConfig:
    """Start dexcost: patch the installed LLM SDKs and record every priced call.

    Every parameter is described in the configuration reference. Invalid values raise
    ``ValueError`` or ``TypeError`` before anything changes. Calling ``init()`` again
    replaces the previous configuration: events already recorded are kept.
    """
    config = DexcostConfig(
        api_key=api_key,
        auto_instrument=auto_instrument,  # type: ignore[arg-type]
        track_http=track_http,
        environment=environment,
        batch_size=batch_size,
        flush_interval=flush_interval,
        redact_fields=redact_fields,  # type: ignore[arg-type]
        hash_customer_id=hash_customer_id,
        storage=storage,
        buffer_path=buffer_path,
        service_catalog_url=service_catalog_url,
        enable_retry_heuristics=enable_retry_heuristics,
        retry_heuristic_window=retry_heuristic_window,
        retry_heuristic_threshold=retry_heuristic_threshold,
        propagate_context_to=propagate_context_to,  # type: ignore[arg-type]
        trust_inbound_context=trust_inbound_context,
        export_to_otel=export_to_otel,
        price_genai_spans=price_genai_spans,
    )
    with _lock:
        new = Runtime(config)
        _activate(new, stop=_runtime)
        _update_service_catalog(config, new.buffer_path)
    logger.debug("dexcost initialised: %r, buffer %s", config, new.buffer_path)
    return config


def _update_service_catalog(config: DexcostConfig, buffer_path: Path | None) -> None:
    """Fetch ``service_catalog_url`` in the background, or drop one an earlier init() set."""
    if config.service_catalog_url is None and "dexcost.catalog.remote" not in sys.modules:
        return  # no catalog code is imported unless it is needed
    from dexcost.catalog import remote

    remote.start(config.service_catalog_url, buffer_path)


def _activate(new: Runtime, *, stop: Runtime | None) -> None:
    """Make ``new`` the active runtime, apply its settings and shut ``stop`` down.

    The caller must hold ``_lock``. ``new`` may be a runtime that was active before: its
    patches and settings are applied again.
    """
    global _runtime, _atexit_registered
    config = new.config
    _runtime = new
    set_privacy(Privacy(config.hash_customer_id, new.redacted_fields, config.trust_inbound_context))
    # Left in place by shutdown(): attribution set earlier stays in the context,
    # and it must not start leaking to other companies' servers then.
    propagation.install(config.propagate_context_to or ())
    rates_registry.install(new.stored_rates)
    if stop is not None and stop is not new:
        stop.shutdown(EXIT_FLUSH_TIMEOUT_SECONDS)
    _apply_patches(new)
    patch_threads()
    _price_genai_spans(bool(config.price_genai_spans))
    pricing.warm_up()
    if not _atexit_registered:
        atexit.register(_shutdown_at_exit)
        _atexit_registered = True


def _apply_patches(runtime: Runtime) -> None:
    """Patch what the runtime's configuration names, less what was switched off."""
    _apply_library_patches(runtime)
    _apply_http_capture(runtime)


def _apply_library_patches(runtime: Runtime) -> None:
    libraries = runtime.config.auto_instrument
    if runtime.switched_off:
        named = ALL_SUPPORTED_INSTRUMENTS if libraries is None else libraries
        libraries = [name for name in named if name not in runtime.switched_off]
    _instrumentation.apply(libraries)


def _apply_http_capture(runtime: Runtime) -> None:
    if runtime.config.track_http and HTTP not in runtime.switched_off:
        http_capture.start(rate.service for rate in runtime.stored_rates.services)
    else:
        http_capture.stop()


def set_library_patched(name: str, patched: bool) -> bool:
    """Patch or unpatch one library (or ``"http"``) of the active runtime.

    The configuration keeps the last word: a library it does not name stays
    unpatched. Returns False when dexcost is not running, and changes nothing then.
    """
    with _lock:
        runtime = _runtime
        if runtime is None:
            return False
        if patched != (name in runtime.switched_off):
            # Already in the requested state, as init() applied the configuration.
            return True
        if patched:
            runtime.switched_off.discard(name)
        else:
            runtime.switched_off.add(name)
        if name == HTTP:
            _apply_http_capture(runtime)
        else:
            _apply_library_patches(runtime)
    return True


def swap_in(config: DexcostConfig, span_processor: SpanProcessor) -> Runtime | None:
    """Start a runtime that sends its events to ``span_processor`` and return the one replaced.

    The replaced runtime keeps running, out of use, so :func:`swap_back` can make it
    active again. Used by ``dexcost.testing``.
    """
    with _lock:
        previous = _runtime
        _activate(Runtime(config, span_processor=span_processor), stop=None)
    return previous


def swap_back(previous: Runtime | None) -> None:
    """Shut the active runtime down and make ``previous`` active again (None: stop dexcost)."""
    with _lock:
        if previous is None:
            shutdown(EXIT_FLUSH_TIMEOUT_SECONDS)
        else:
            _activate(previous, stop=_runtime)


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds such as 5.0, got {timeout!r}")
    if not 0 <= timeout < float("inf"):
        raise ValueError(f"timeout={timeout} is invalid; pass a number of seconds, 0 or more")
    return float(timeout)


def flush(timeout: float = 5.0) -> bool:
    """Store every event recorded so far in the local buffer; False if ``timeout`` ran out."""
    seconds = _check_timeout(timeout)
    runtime = _runtime
    if runtime is None:
        return True
    return runtime.flush(seconds)


def shutdown(timeout: float = 5.0) -> None:
    """End open session tasks, store all events, stop dexcost and remove its patches."""
    timeout = _check_timeout(timeout)
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
        _instrumentation.uninstrument_all()
        http_capture.stop()
        unpatch_threads()
        _price_genai_spans(False)
        rates_registry.uninstall()
    if runtime is not None:
        runtime.shutdown(timeout)


def _price_genai_spans(enabled: bool) -> None:
    """Start or stop pricing other instrumentations' GenAI spans.

    The module is imported only once the option is used, because it imports
    ``dexcost.llm``, which imports this module.
    """
    if enabled or "dexcost.genai_spans" in sys.modules:
        from dexcost import genai_spans

        genai_spans.apply(enabled)


def instrumented_libraries() -> list[str]:
    """Return the names of the libraries dexcost has patched in this process."""
    return _instrumentation.instrumented()


def _shutdown_at_exit() -> None:
    try:
        shutdown(EXIT_FLUSH_TIMEOUT_SECONDS)
    except Exception:
        logger.exception("dexcost could not shut down cleanly at exit")
