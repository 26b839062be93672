"""AWS Bedrock instrumentation: the bedrock-runtime client of botocore and boto3.

Supported: botocore 1.34.116 (the first release with Converse) through 1.x. Recorded
operations: ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream``. Two patches, both undone by ``uninstrument``:

- ``botocore.client.BaseClient._make_api_call``, the method every botocore client
  call goes through. Patching the base class covers clients created before
  ``dexcost.init()``; other AWS calls cost one set lookup and are otherwise untouched.
- ``botocore.eventstream.EventStream.close``, to record a stream closed early.

Other bedrock-runtime operations are not recorded: ``ApplyGuardrail`` is billed per
text unit, ``CountTokens`` is free, and ``StartAsyncInvoke`` writes its results to S3
where dexcost cannot see them. aiobotocore overrides ``_make_api_call`` with its own
coroutine, so its async clients are not recorded either.

NOTE: the tests run against the newest botocore only (1.44). Older releases in the
supported range were checked by reading their ``_make_api_call`` and ``EventStream``,
not by running them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dexcost.instrumentation.bedrock.patch import SDKTypes, make_api_call_wrapper
from dexcost.instrumentation.bedrock.stream import close_wrapper
from dexcost.instrumentation.registry import Instrumentor


class BedrockInstrumentor(Instrumentor):
    """Patch botocore; every patch is undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        del module  # the classes live in submodules the botocore package does not import
        client = importlib.import_module("botocore.client")
        eventstream = importlib.import_module("botocore.eventstream")
        self._wrap(client.BaseClient, "_make_api_call", make_api_call_wrapper(SDKTypes()))
        self._wrap(eventstream.EventStream, "close", close_wrapper)
