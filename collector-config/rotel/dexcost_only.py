"""rotel trace processor that keeps only spans of the ``dexcost`` instrumentation scope.

rotel runs this file in its embedded Python interpreter and calls ``process_spans``
once per resource with the spans it received, before batching. Dropping every other
scope means an application that points its own tracing at the gateway does not leak
those spans to the Control Layer.
"""

from __future__ import annotations

from typing import Any

SCOPE = "dexcost"


def process_spans(resource_spans: Any) -> None:
    """Remove every scope but dexcost's from ``resource_spans``, in place."""
    resource_spans.scope_spans = [
        scope_spans
        for scope_spans in resource_spans.scope_spans
        if scope_spans.scope is not None and scope_spans.scope.name == SCOPE
    ]
