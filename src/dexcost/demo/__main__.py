"""Show dexcost's main job end to end: ``python -m dexcost.demo``.

One support ticket for the customer ``acme-corp`` makes a chat completion, a
streamed chat completion and a paid search call through the real ``openai``
SDK. dexcost prices each call, prints it with the task total (development
mode), stores it in a fresh local buffer, and the demo then runs
``dexcost status`` on that buffer.

With ``OPENAI_API_KEY`` set the calls go to the real OpenAI API (model
gpt-4o-mini, a fraction of a cent). Without it the demo starts the fake
OpenAI server on 127.0.0.1 and nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import openai

    from dexcost.demo.fake_openai import FakeOpenAIServer

MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = "You are the helpdesk assistant of Acme Corp. Answer in one or two sentences."
TICKET = "I forgot my password and cannot sign in to the dashboard. What should I do?"
SUMMARY_REQUEST = "Summarise this ticket in one line for the support queue."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return 0 on success and 1 if any step failed."""
    options = _parse_arguments(argv)
    try:
        import openai  # noqa: F401  (only checks that the SDK is installed)
    except ImportError:
        print("The demo needs the openai SDK: pip install 'dexcost[openai]'", file=sys.stderr)
        return 1

    buffer_path = options.buffer_path or _fresh_buffer_path()
    try:
        with contextlib.ExitStack() as stack:
            client, server = _connect(stack)
            _run_ticket(client, buffer_path)
            if server is not None:
                _report_stream_usage_request(server)
        return _show_status(buffer_path)
    except Exception:
        traceback.print_exc()
        print("\nThe demo failed: see the traceback above.", file=sys.stderr)
        return 1


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dexcost.demo",
        description=(
            "Price one support ticket end to end. Uses the real OpenAI API when "
            "OPENAI_API_KEY is set, otherwise a fake OpenAI server on 127.0.0.1."
        ),
    )
    parser.add_argument(
        "--buffer-path",
        type=Path,
        help="SQLite buffer file to write (default: buffer.db in a new temporary folder)",
    )
    return parser.parse_args(argv)


def _fresh_buffer_path() -> Path:
    # Kept after the demo so that `dexcost status --db PATH` can be rerun on it.
    return Path(tempfile.mkdtemp(prefix="dexcost-demo-")) / "buffer.db"


def _connect(stack: contextlib.ExitStack) -> tuple[openai.OpenAI, FakeOpenAIServer | None]:
    """Build the OpenAI client, starting the fake server unless a real key is set."""
    import openai

    if os.environ.get("OPENAI_API_KEY"):
        _say("dexcost demo: calling the real OpenAI API (OPENAI_API_KEY is set).")
        return stack.enter_context(openai.OpenAI()), None

    from dexcost.demo.fake_openai import FakeOpenAIServer

    server = stack.enter_context(FakeOpenAIServer())
    _script_fake_replies(server)
    _say(
        f"dexcost demo: calling a fake OpenAI server at {server.base_url} "
        "(set OPENAI_API_KEY to call the real API). Nothing leaves this machine."
    )
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-demo-not-a-real-key")
    return stack.enter_context(client), server


def _script_fake_replies(server: FakeOpenAIServer) -> None:
    """Queue plausible replies and token counts for the demo's two calls."""
    from dexcost.demo.fake_openai import FakeReply, FakeUsage

    answer = (
        "Use 'Forgot password' on the sign-in page; the reset link in the email "
        "is valid for 30 minutes."
    )
    summary = ["Password reset: ", "customer cannot sign in ", "to the dashboard."]
    server.enqueue(
        FakeReply(chunks=[answer], usage=FakeUsage(prompt_tokens=48, completion_tokens=27)),
        FakeReply(chunks=summary, usage=FakeUsage(prompt_tokens=41, completion_tokens=11)),
    )


def _run_ticket(client: openai.OpenAI, buffer_path: Path) -> None:
    """Handle one ticket inside a dexcost task and print what it cost."""
    import dexcost

    dexcost.init(environment="development", storage="local", buffer_path=str(buffer_path))
    try:
        dexcost.set_context(customer_id="acme-corp", project_id="helpdesk")
        _say("Ticket for customer acme-corp, project helpdesk: " + TICKET)

        with dexcost.task("support_ticket") as ticket:
            answer = client.chat.completions.create(
                model=MODEL,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": TICKET},
                ],
            )
            _say(f"  answer: {answer.choices[0].message.content}")

            # No stream_options here: dexcost requests the usage chunk itself
            # and hides it from this loop.
            stream = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"{SUMMARY_REQUEST}\n\n{TICKET}"}],
                stream=True,
            )
            pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
            _say(f"  summary (streamed): {''.join(pieces)}")

            ticket.record_cost(service="serpapi", cost_usd="0.015")
            _say("  looked up the help-centre article with serpapi ($0.015)")

        _say(f"ticket.cost_usd = {ticket.cost_usd!r}: the task total, as your code sees it")
        if not dexcost.flush(timeout=10):
            raise RuntimeError(f"dexcost did not finish writing {buffer_path} within 10 s")
    finally:
        dexcost.shutdown()


def _report_stream_usage_request(server: FakeOpenAIServer) -> None:
    """Print whether dexcost, not the demo, requested the stream's usage from the API."""
    streamed = [request for request in server.requests if (request.body or {}).get("stream")]
    options: Any = streamed[-1].body.get("stream_options") if streamed else None
    requested = isinstance(options, dict) and options.get("include_usage") is True
    _say(f"dexcost added stream_options.include_usage to the streamed call: {requested}")


def _show_status(buffer_path: Path) -> int:
    """Run the real `dexcost status` CLI on the demo's buffer, as a user would."""
    command = [sys.executable, "-m", "dexcost.cli", "status", "--db", str(buffer_path)]
    _say(f"\n$ dexcost status --db {buffer_path}")
    result = subprocess.run(command, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        print(f"dexcost status failed with exit code {result.returncode}", file=sys.stderr)
        return 1
    return 0


def _say(text: str) -> None:
    # Flushed so that the demo's lines and dexcost's stderr lines interleave in order.
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
