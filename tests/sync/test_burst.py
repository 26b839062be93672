"""A burst recorded while the receiver refuses connections is delivered once it is up."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import dexcost

from .conftest import all_delivered, record_calls, stored_events, wait_until
from .receiver import Receiver


def test_burst_delivered_after_outage(
    push: Callable[..., dexcost.DexcostConfig], receiver: Receiver, buffer_path: Path
) -> None:
    push(batch_size=500)
    record_calls(5_000)
    assert dexcost.flush(timeout=10)
    receiver.up()
    assert wait_until(all_delivered(receiver, buffer_path), 20)
    events = stored_events(buffer_path)
    assert len(events) == 5_000
    assert receiver.event_ids() == set(events)
    # 5,000 calls at $0.00036 each (see record_calls).
    assert receiver.event_cost() == Decimal("1.80000")
