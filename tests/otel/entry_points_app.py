"""An application that leaves starting dexcost to ``opentelemetry-instrument``.

It makes one chat completion with openai and one message with anthropic (unless an
argument names only some of them) against fake APIs on 127.0.0.1, inside a span of its
own, and prints a JSON summary as its last line. The argument ``init`` calls
``dexcost.init()`` in code before the calls, as an application that starts dexcost
itself would.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from opentelemetry import trace

from dexcost.demo.fake_openai import FakeOpenAIServer, FakeUsage


def openai_call() -> int:
    import openai

    with FakeOpenAIServer() as server:
        server.usage = FakeUsage(prompt_tokens=1200, completion_tokens=300)
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
            )
        return len(server.requests)


def anthropic_call() -> int:
    import anthropic

    from dexcost.demo.fake_anthropic import AnthropicUsage, FakeAnthropicServer

    with FakeAnthropicServer(usage=AnthropicUsage(input_tokens=1000, output_tokens=300)) as server:
        with anthropic.Anthropic(
            base_url=server.base_url, api_key="sk-ant-test", max_retries=0
        ) as client:
            client.messages.create(
                model="claude-sonnet-4",
                max_tokens=64,
                messages=[{"role": "user", "content": "hello"}],
            )
        return len(server.requests)


def main(arguments: list[str]) -> dict[str, Any]:
    import dexcost
    from dexcost import runtime

    summary: dict[str, Any] = {"started_by_auto_launch": runtime.current_runtime() is not None}
    if "init" in arguments:
        dexcost.init()
    calls = [name for name in arguments if name in ("openai", "anthropic")]
    calls = calls or ["openai", "anthropic"]
    requests = {}
    tracer = trace.get_tracer("entry_points_app")
    with tracer.start_as_current_span("handle_ticket"), dexcost.context(customer_id="acme"):
        if "openai" in calls:
            requests["openai"] = openai_call()
        if "anthropic" in calls:
            requests["anthropic"] = anthropic_call()
    summary["requests"] = requests
    summary["flushed"] = dexcost.flush(timeout=10)
    summary["instrumented"] = runtime.instrumented_libraries()
    from dexcost import http

    summary["http_captured"] = http.captured_libraries()
    return summary


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
