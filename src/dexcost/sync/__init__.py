"""Upload of buffered cost events to the Control Layer over OTLP/HTTP.

See ``docs/sync.md`` for what is and is not guaranteed.
"""

from __future__ import annotations

from pathlib import Path

from dexcost.config import DexcostConfig
from dexcost.sync.worker import SyncWorker

__all__ = ["SyncWorker", "create_sync_worker"]


def create_sync_worker(config: DexcostConfig, buffer_path: Path) -> SyncWorker | None:
    """Return a worker for ``config``, or None when events stay local.

    Events are pushed only with an API key, without ``storage="local"`` and outside
    development mode. Raises ``ValueError`` for an invalid ``DEXCOST_BUFFER_MAX_ROWS``.
    """
    if config.storage_mode != "cloud" or config.api_key is None:
        return None
    return SyncWorker(
        buffer_path,
        endpoint=config.endpoint,
        api_key=config.api_key,
        batch_size=config.batch_size,
        flush_interval=config.flush_interval,
    )
