"""Span attribute names that dexcost writes, read and stores.

GenAI names follow the OpenTelemetry GenAI semantic conventions (development
stability as of semantic-conventions 1.38): ``gen_ai.usage.input_tokens``
includes cached tokens, and ``gen_ai.usage.output_tokens`` includes reasoning
tokens. Everything dexcost adds lives under ``dexcost.*``.
"""

from __future__ import annotations

from typing import Final

# Instrumentation scope of every span dexcost creates.
SCOPE_NAME: Final = "dexcost"
# Scope of the copies export_to_otel hands to the application's provider. It differs
# from SCOPE_NAME so a gateway that forwards dexcost's uploads (scope "dexcost") to the
# Control Layer drops the copies an app's own tracing sends it, and no cost counts twice.
EXPORT_SCOPE_NAME: Final = "dexcost.export"

# --- GenAI conventions ---
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_CACHE_READ_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_CACHE_CREATION_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_REASONING_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_AUDIO_INPUT_TOKENS: Final = "gen_ai.usage.audio.input_tokens"
GEN_AI_AUDIO_OUTPUT_TOKENS: Final = "gen_ai.usage.audio.output_tokens"
GEN_AI_SERVICE_TIER: Final = "openai.response.service_tier"

# --- generic conventions ---
ERROR_TYPE: Final = "error.type"
HTTP_STATUS_CODE: Final = "http.response.status_code"
HTTP_REQUEST_METHOD: Final = "http.request.method"
SERVER_ADDRESS: Final = "server.address"
URL_PATH: Final = "url.path"

# --- dexcost ---
EVENT_TYPE: Final = "dexcost.event_type"
COST_USD: Final = "dexcost.cost_usd"
COST_STATUS: Final = "dexcost.cost_status"
PRICING_SOURCE: Final = "dexcost.pricing.source"
STREAMED: Final = "dexcost.streamed"
AZURE_DEPLOYMENT: Final = "dexcost.azure.deployment"
# The routing library (e.g. "litellm") a call went through, when one did.
ROUTED_BY: Final = "dexcost.routed_by"
# A result of a batch job (e.g. an Anthropic Message Batch), priced at the batch rate.
BATCH_ID: Final = "dexcost.batch.id"
BATCH_CUSTOM_ID: Final = "dexcost.batch.custom_id"

TASK_ID: Final = "dexcost.task.id"
TASK_TYPE: Final = "dexcost.task.type"
TASK_PARENT_ID: Final = "dexcost.task.parent_id"
TASK_STATUS: Final = "dexcost.task.status"
TASK_AUTO: Final = "dexcost.task.auto"
TASK_COST_USD: Final = "dexcost.task.cost_usd"
TASK_LLM_COST_USD: Final = "dexcost.task.llm_cost_usd"
TASK_EXTERNAL_COST_USD: Final = "dexcost.task.external_cost_usd"
TASK_RETRY_COST_USD: Final = "dexcost.task.retry_cost_usd"
TASK_EVENT_COUNT: Final = "dexcost.task.event_count"
TASK_RETRY_COUNT: Final = "dexcost.task.retry_count"
TASK_UNPRICED_COUNT: Final = "dexcost.task.unpriced_count"
# LLM calls of the task still running when it ended (a stream left unread, for
# instance); their cost is not in the task's totals.
TASK_OPEN_CALLS: Final = "dexcost.task.open_calls"
TASK_INPUT_TOKENS: Final = "dexcost.task.input_tokens"
TASK_OUTPUT_TOKENS: Final = "dexcost.task.output_tokens"
TASK_CACHED_TOKENS: Final = "dexcost.task.cached_tokens"
TASK_REASONING_TOKENS: Final = "dexcost.task.reasoning_tokens"

CUSTOMER_ID: Final = "dexcost.customer_id"
PROJECT_ID: Final = "dexcost.project_id"
AGENT: Final = "dexcost.agent"
METADATA_PREFIX: Final = "dexcost.metadata."

SERVICE: Final = "dexcost.service"
UNITS: Final = "dexcost.units"
UNIT: Final = "dexcost.unit"

RETRY_IS_RETRY: Final = "dexcost.retry.is_retry"
RETRY_CONFIDENCE: Final = "dexcost.retry.confidence"
RETRY_REASON: Final = "dexcost.retry.reason"

# dexcost.event_type values
LLM_CALL: Final = "llm_call"
EXTERNAL_COST: Final = "external_cost"
RETRY_MARKER: Final = "retry_marker"
TASK: Final = "task"

# dexcost.cost_status values
PRICED: Final = "priced"
PROVIDER_REPORTED: Final = "provider_reported"
UNPRICED: Final = "unpriced"
USAGE_UNKNOWN: Final = "usage_unknown"
