"""The registry of instrumentable libraries and the base class each instrumentor follows.

Each entry names the import module, the distribution whose version is checked, the
supported version range and where the instrumentor class lives. Nothing here imports
a provider SDK: an instrumentor patches its library when the application imports it
(a post-import hook), so ``init()`` stays fast and never loads SDKs the app does not use.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import re
import threading
import types
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dexcost.errors import warn_user
from dexcost.instrumentation.import_hook import run_if_imported, when_imported

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibrarySpec:
    """The facts dexcost needs to instrument one library."""

    name: str
    module: str
    distribution: str
    min_version: tuple[int, ...]
    max_version_exclusive: tuple[int, ...]
    instrumentor: str  # "package.module:ClassName"

    @property
    def supported_range(self) -> str:
        low = ".".join(map(str, self.min_version))
        high = ".".join(map(str, self.max_version_exclusive))
        return f">={low},<{high}"


_SPECS: tuple[LibrarySpec, ...] = (
    LibrarySpec(
        name="openai",
        module="openai",
        distribution="openai",
        # 1.26 is the first release with stream_options; 4.x does not exist yet.
        min_version=(1, 26),
        max_version_exclusive=(4,),
        instrumentor="dexcost.instrumentation.openai:OpenAIInstrumentor",
    ),
    LibrarySpec(
        name="anthropic",
        module="anthropic",
        distribution="anthropic",
        # 0.43 through 2.x (2.x runs on httpx2); 3.x does not exist yet. Before 0.43 the
        # messages.stream() helper read the HTTP response itself, out of dexcost's sight.
        min_version=(0, 43),
        max_version_exclusive=(3,),
        instrumentor="dexcost.instrumentation.anthropic:AnthropicInstrumentor",
    ),
    LibrarySpec(
        name="google_genai",
        module="google.genai",
        distribution="google-genai",
        # 2.25 and 3.6 were read and have the same per-request methods. 4.x was not read.
        min_version=(2, 25),
        max_version_exclusive=(4,),
        instrumentor="dexcost.instrumentation.google_genai:GoogleGenAIInstrumentor",
    ),
    LibrarySpec(
        name="litellm",
        module="litellm",
        distribution="litellm",
        # 1.40 through 1.x; 2.x does not exist yet.
        min_version=(1, 40),
        max_version_exclusive=(2,),
        instrumentor="dexcost.instrumentation.litellm:LiteLLMInstrumentor",
    ),
    LibrarySpec(
        name="bedrock",
        module="botocore",
        distribution="botocore",
        # The bedrock-runtime client of botocore: Converse arrived in 1.34.116.
        min_version=(1, 34, 116),
        max_version_exclusive=(2,),
        instrumentor="dexcost.instrumentation.bedrock:BedrockInstrumentor",
    ),
    LibrarySpec(
        name="cohere",
        module="cohere",
        distribution="cohere",
        # 5.16 added the raw client classes every call goes through; 8.x does not exist.
        min_version=(5, 16),
        max_version_exclusive=(8,),
        instrumentor="dexcost.instrumentation.cohere:CohereInstrumentor",
    ),
    LibrarySpec(
        name="mistralai",
        module="mistralai",
        distribution="mistralai",
        # The 1.x rewrite (Mistral class) through 3.x; 0.x had another client.
        min_version=(1,),
        max_version_exclusive=(4,),
        instrumentor="dexcost.instrumentation.mistralai:MistralInstrumentor",
    ),
    LibrarySpec(
        name="groq",
        module="groq",
        distribution="groq",
        min_version=(0, 9),
        max_version_exclusive=(2,),
        instrumentor="dexcost.instrumentation.groq:GroqInstrumentor",
    ),
    LibrarySpec(
        name="ollama",
        module="ollama",
        distribution="ollama",
        # 0.4 made responses typed objects; 1.x does not exist yet.
        min_version=(0, 4),
        max_version_exclusive=(1,),
        instrumentor="dexcost.instrumentation.ollama:OllamaInstrumentor",
    ),
)

LIBRARIES: dict[str, LibrarySpec] = {spec.name: spec for spec in _SPECS}
ALL_SUPPORTED_INSTRUMENTS: tuple[str, ...] = tuple(LIBRARIES)


def parse_version(text: str) -> tuple[int, ...]:
    """Parse the leading release numbers of a version string: ``"3.60.0rc1"`` -> ``(3, 60, 0)``."""
    numbers: list[int] = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(numbers)


def installed_version(spec: LibrarySpec) -> str | None:
    """Return the installed version of the library's distribution, or None when absent.

    Called once the library is imported: ``importlib.metadata`` costs ~40 ms to import
    here, which ``init()`` must not pay before the app loads any SDK.
    """
    import importlib.metadata

    try:
        return importlib.metadata.version(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_supported(spec: LibrarySpec, version: str) -> bool:
    parsed = parse_version(version)
    return spec.min_version <= parsed < spec.max_version_exclusive


class _Gate:
    """The wrapper dexcost hands to wrapt: runs dexcost's own wrapper while active.

    ``uninstrument`` cannot take a wrapper out from under a wrapper another library
    added later without removing that one too, so it turns the gate off instead, and
    the method then only passes calls through.
    """

    __slots__ = ("active", "wrapper")

    def __init__(self, wrapper: Callable[..., Any]) -> None:
        self.wrapper = wrapper
        self.active = True

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        if self.active:
            return self.wrapper(wrapped, instance, args, kwargs)
        return wrapped(*args, **kwargs)


# Builds the function that replaces a method, from the original and its gate, or
# returns None for an original it was not written for. The function must call the
# original unchanged while the gate is off.
MethodWrapperFactory = Callable[[types.FunctionType, "_Gate"], Callable[..., Any] | None]


def _gated_function(
    original: types.FunctionType,
    gate: _Gate,
    unless: ContextVar[bool] | None,
    factory: MethodWrapperFactory | None = None,
) -> Callable[..., Any]:
    """Return a plain function that runs ``gate`` around ``original``, a method.

    It does what a wrapt wrapper with ``gate`` does for an instance method, for less:
    no proxy is bound on every attribute access, and no call goes through the gate
    object. Like a wrapt proxy it shows the original's name, docstring and attributes,
    and ``__wrapped__`` leads to the original. :func:`gate_of` finds its gate. While
    ``unless`` is set, calls go straight to the original. ``factory``, when given,
    builds the function instead, for a method whose wrapper is worth writing as one
    function with the method's own signature.
    """
    bind = types.MethodType
    built = factory(original, gate) if factory is not None else None

    if built is not None:
        gated = built
    elif unless is None:

        def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
            if gate.active:
                return gate.wrapper(bind(original, self), self, args, kwargs)
            return original(self, *args, **kwargs)

    else:
        skip = unless.get

        def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
            if gate.active and not skip():
                return gate.wrapper(bind(original, self), self, args, kwargs)
            return original(self, *args, **kwargs)

    functools.update_wrapper(gated, original)
    _FUNCTION_GATES[gated] = gate
    return gated


# The gate of each plain-function wrapper dexcost installed, found by the function's
# identity. An attribute on the function would not do: a library that wraps it with
# functools.wraps (OpenTelemetry's requests instrumentation does) copies the
# function's __dict__, and its own function would then pass for dexcost's.
_FUNCTION_GATES: weakref.WeakKeyDictionary[Callable[..., Any], _Gate] = weakref.WeakKeyDictionary()


def gate_of(value: Any) -> _Gate | None:
    """Return the gate of ``value`` when it is one of dexcost's wrappers, else None."""
    # type(), not isinstance(): a wrapt proxy claims the class of what it wraps, and
    # compares and hashes like it, so it would be taken for dexcost's function.
    if type(value) is types.FunctionType:
        return _FUNCTION_GATES.get(value)
    wrapper = getattr(value, "_self_wrapper", None)  # a wrapt proxy's wrapper
    return wrapper if isinstance(wrapper, _Gate) else None


def _can_gate_as_function(value: Any) -> bool:
    """Tell whether ``value`` is a method :func:`_gated_function` can stand in for.

    Coroutine and generator functions are left to wrapt, whose proxy keeps them
    recognisable as such to ``inspect``.
    """
    return isinstance(value, types.FunctionType) and not (
        value.__code__.co_flags & _NOT_PLAIN_FLAGS
    )


_NOT_PLAIN_FLAGS = (
    inspect.CO_COROUTINE
    | inspect.CO_GENERATOR
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)

# Bound on the wrappers looked through to find dexcost's, against a cyclic chain.
_MAX_WRAPPER_DEPTH = 32


def find_gate(value: Any) -> _Gate | None:
    """Return dexcost's gate among the wrapt wrappers around ``value``, if any."""
    for _ in range(_MAX_WRAPPER_DEPTH):
        gate = gate_of(value)
        if gate is not None:
            return gate
        if getattr(value, "_self_wrapper", None) is None:
            return None  # neither dexcost's wrapper nor a wrapt proxy
        value = getattr(value, "__wrapped__", None)
    return None


def _innermost_wrapper(value: Any, wrapper_type: type) -> Any:
    """Return the innermost wrapt wrapper around a plain function in ``value``, or None.

    Only wrappers of plain functions qualify: a wrapper of a classmethod or another
    descriptor binds differently, so dexcost then wraps the attribute from outside.
    """
    holder: Any = None
    for _ in range(_MAX_WRAPPER_DEPTH):
        if not isinstance(value, wrapper_type):
            break
        holder = value
        value = getattr(value, "__wrapped__", None)
    if holder is None or not isinstance(value, types.FunctionType):
        return None
    return holder


class Instrumentor(ABC):
    """Patch one library; ``instrument``/``uninstrument`` are idempotent and restore exactly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._patched = False
        # (owner, attribute name, original value or None, gate, the other library's
        # wrapper that contains dexcost's, or None), in patch order.
        self._wrapped: list[tuple[Any, str, Any, _Gate, Any]] = []

    @property
    def is_instrumented(self) -> bool:
        return self._patched

    def instrument(self, module: ModuleType) -> None:
        with self._lock:
            if self._patched:
                return
            self._patch(module)
            self._patched = True

    def uninstrument(self) -> None:
        with self._lock:
            if not self._patched:
                return
            self._unpatch()
            self._patched = False

    @abstractmethod
    def _patch(self, module: ModuleType) -> None: ...

    def _wrap(
        self,
        owner: Any,
        name: str,
        wrapper: Callable[..., Any],
        *,
        method: bool = False,
        unless: ContextVar[bool] | None = None,
        factory: MethodWrapperFactory | None = None,
    ) -> bool:
        """Wrap ``owner.name`` (a class or module attribute) with a wrapt function wrapper.

        With ``method=True``, an instance method (a plain function defined in a class)
        is wrapped with a plain function instead, which costs less per call; a
        coroutine function or anything else still gets a wrapt wrapper. That plain
        function skips ``wrapper`` while the context variable ``unless`` is set, so
        ``wrapper`` must pass such calls through unchanged too. ``factory`` builds that
        plain function instead (see :func:`_gated_function`); ``wrapper`` then serves
        only where wrapt is used.

        Only attributes ``owner`` defines itself: a subclass that inherits a method is
        covered by the patch on its base, and patching both would record twice. A
        method dexcost already wraps is not wrapped again; a wrapper left behind by an
        earlier ``uninstrument`` (because another library wrapped on top) is turned on
        again. Returns whether dexcost now records through ``owner.name``.
        """
        original = vars(owner).get(name)
        if original is None:
            return False
        gate = find_gate(original)
        if gate is not None:
            if gate.active:
                return False
            gate.wrapper = wrapper
            gate.active = True
            self._wrapped.append((owner, name, None, gate, None))
            return True
        import wrapt

        gate = _Gate(wrapper)
        holder = _innermost_wrapper(original, wrapt.FunctionWrapper)
        if holder is None:
            if method and _can_gate_as_function(original):
                setattr(owner, name, _gated_function(original, gate, unless, factory))
            else:
                wrapt.wrap_function_wrapper(owner, name, gate)
            self._wrapped.append((owner, name, original, gate, None))
            return True
        # Another library wrapped the method first. dexcost goes inside its wrapper,
        # next to the SDK, so it receives the SDK's own result (a stream, not the other
        # library's proxy of it) and both wrappers keep working.
        inner = holder.__wrapped__
        if method and _can_gate_as_function(inner):
            holder.__wrapped__ = _gated_function(inner, gate, unless, factory)
        else:
            holder.__wrapped__ = wrapt.FunctionWrapper(inner, gate)
        self._wrapped.append((owner, name, inner, gate, holder))
        return True

    def _unpatch(self) -> None:
        """Undo every :meth:`_wrap`, newest first."""
        while self._wrapped:
            owner, name, original, gate, holder = self._wrapped.pop()
            gate.active = False
            if original is None:
                continue
            current = vars(owner).get(name)
            if gate_of(current) is gate:
                # The method is dexcost's wrapper again, for instance after the other
                # library removed its own.
                setattr(owner, name, original)
            elif holder is not None and gate_of(holder.__wrapped__) is gate:
                holder.__wrapped__ = original


class InstrumentationManager:
    """Hold one instrumentor per library and apply the user's ``auto_instrument`` choice.

    Libraries already imported are patched at once; the others are patched by a
    post-import hook when the application imports them. A library whose installed
    version is outside the supported range is skipped with one warning.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instrumentors: dict[str, Instrumentor] = {}
        self._wanted: set[str] = set()
        self._hooked: set[str] = set()
        self._warned: set[str] = set()

    def apply(self, names: list[str] | None) -> None:
        """Instrument ``names`` (None means every supported library) and undo the rest."""
        wanted = set(ALL_SUPPORTED_INSTRUMENTS if names is None else names)
        with self._lock:
            self._wanted = wanted
            for name, instrumentor in self._instrumentors.items():
                if name not in wanted:
                    instrumentor.uninstrument()
        for name in sorted(wanted):
            spec = LIBRARIES[name]
            with self._lock:
                first_time = name not in self._hooked
                self._hooked.add(name)
            if first_time:
                # Runs the hook now if the module is already imported, else on import.
                when_imported(spec.module, self._on_import)
            else:
                run_if_imported(spec.module, self._on_import)

    def uninstrument_all(self) -> None:
        with self._lock:
            self._wanted = set()
            for instrumentor in self._instrumentors.values():
                instrumentor.uninstrument()

    def instrumented(self) -> list[str]:
        return sorted(n for n, i in self._instrumentors.items() if i.is_instrumented)

    def _on_import(self, module: ModuleType) -> None:
        name = next((s.name for s in _SPECS if s.module == module.__name__), None)
        if name is None:
            return
        with self._lock:
            if name not in self._wanted:
                return
        spec = LIBRARIES[name]
        version = installed_version(spec)
        if version is not None and not is_supported(spec, version):
            self._warn_unsupported(spec, version)
            return
        try:
            instrumentor = self._get_instrumentor(name)
            instrumentor.instrument(module)
        except Exception:
            logger.exception("dexcost could not instrument %s; its calls will not be priced", name)

    def _get_instrumentor(self, name: str) -> Instrumentor:
        with self._lock:
            existing = self._instrumentors.get(name)
            if existing is not None:
                return existing
        module_name, _, class_name = LIBRARIES[name].instrumentor.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        instrumentor: Instrumentor = cls()
        with self._lock:
            return self._instrumentors.setdefault(name, instrumentor)

    def _warn_unsupported(self, spec: LibrarySpec, version: str) -> None:
        if spec.name in self._warned:
            return
        self._warned.add(spec.name)
        warn_user(
            f"dexcost does not instrument {spec.distribution} {version}: supported versions are "
            f"{spec.supported_range}. Its calls will not be priced; install a supported version "
            f"or record costs with record_llm_call()."
        )
