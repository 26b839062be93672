"""The YAML rate file that ``dexcost rates --import`` reads and ``--export`` writes.

The file is walked as a YAML node tree rather than loaded into Python objects,
because the node records whether a value was quoted: an unquoted ``0.005`` is a YAML
float, which is not exact, and the message can then say to quote it. Duplicate
keys, which a plain YAML load silently drops, are rejected the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import yaml

from dexcost.pricing.money import format_usd
from dexcost.rates.entries import (
    MODEL_FIELDS,
    MODEL_PRICE_FIELDS,
    SERVICE_FIELDS,
    ModelRate,
    RateValueError,
    ServiceRate,
    check_name,
    model_rate,
    service_rate,
)

SECTIONS = ("rates", "models")

_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"

_FILE_HEADER = (
    "# dexcost rates: USD prices that win over the price tables.\n"
    "# Load into a buffer with: dexcost rates --import FILE\n"
)


class RateFileError(ValueError):
    """Raised for an invalid rate file; the message names the file, the entry and the fix."""


@dataclass
class RateFile:
    """The entries of one rate file, in file order."""

    services: list[ServiceRate] = field(default_factory=list)
    models: list[ModelRate] = field(default_factory=list)


class _Problem(Exception):
    """An invalid value at a dotted path such as ``rates.ocr-api.com.per``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def parse_rate_file(text: str, file_name: str) -> RateFile:
    """Parse and check the YAML text of a rate file.

    Raises RateFileError naming ``file_name``, the entry and the problem for the
    first invalid value, so a caller imports the whole file or nothing.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise RateFileError(f"{file_name}: invalid YAML: {_yaml_problem(error)}") from None
    try:
        return _read_root(root)
    except _Problem as problem:
        where = f"{problem.path}: " if problem.path else ""
        raise RateFileError(f"{file_name}: {where}{problem.message}") from None


def render_rate_file(services: Iterable[ServiceRate], models: Iterable[ModelRate]) -> str:
    """Return YAML text that ``parse_rate_file`` reads back to the same entries.

    Services and models are sorted by name. A model with one entry is written as a
    mapping, and a model with entries for several providers as a list.
    """
    rates = {
        rate.service: {"per": rate.per, "cost_usd": format_usd(rate.cost_usd)}
        for rate in sorted(services, key=lambda rate: rate.service)
    }
    by_model: dict[str, list[dict[str, str]]] = {}
    for rate in sorted(models, key=lambda rate: (rate.model, rate.provider or "")):
        entry = {} if rate.provider is None else {"provider": rate.provider}
        entry.update({name: format_usd(value) for name, value in rate.prices().items()})
        by_model.setdefault(rate.model, []).append(entry)
    document = {
        "rates": rates,
        "models": {
            model: entries[0] if len(entries) == 1 else entries
            for model, entries in by_model.items()
        },
    }
    # safe_dump quotes every string that YAML would otherwise read as a number,
    # so "0.005" stays text and the import reads an exact decimal.
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return _FILE_HEADER + body


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


# --- walking the node tree ---


def _read_root(root: yaml.Node | None) -> RateFile:
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL_TAG):
        raise _Problem("", "the file is empty. Write a rates: and/or a models: section")
    result = RateFile()
    for section, node in _mapping_items(root, "", "the file", allowed=SECTIONS):
        if section == "rates":
            result.services.extend(_read_services(node))
        else:
            result.models.extend(_read_models(node))
    return result


def _read_services(node: yaml.Node) -> Iterator[ServiceRate]:
    for service, entry in _section_items(node, "rates"):
        path = f"rates.{service}"
        _check_entry_name("service", service, path)
        fields = dict(_mapping_items(entry, path, "a service rate", allowed=SERVICE_FIELDS))
        for name in SERVICE_FIELDS:
            if name not in fields:
                example = "request" if name == "per" else '"0.005"'
                raise _Problem(path, f"{name} is missing. Add it, such as {name}: {example}")
        per = _text(fields["per"], f"{path}.per")
        cost = _decimal_text(fields["cost_usd"], f"{path}.cost_usd", '"0.005"')
        try:
            yield service_rate(service, per, cost)
        except RateValueError as error:
            raise _problem_at(path, error) from None


def _read_models(node: yaml.Node) -> Iterator[ModelRate]:
    for model, value in _section_items(node, "models"):
        path = f"models.{model}"
        _check_entry_name("model", model, path)
        if isinstance(value, yaml.SequenceNode):
            if not value.value:
                raise _Problem(path, "the list of provider entries is empty. Add an entry")
            entries = [(f"{path}[{index}]", item) for index, item in enumerate(value.value)]
        else:
            entries = [(path, value)]
        seen: dict[str | None, str] = {}
        for entry_path, entry in entries:
            rate = _read_model_entry(model, entry_path, entry)
            if rate.provider in seen:
                who = "every provider" if rate.provider is None else f"provider {rate.provider!r}"
                raise _Problem(
                    entry_path,
                    f"a second entry for {who}, after {seen[rate.provider]}. "
                    "Keep one entry per provider",
                )
            seen[rate.provider] = entry_path
            yield rate


def _read_model_entry(model: str, path: str, node: yaml.Node) -> ModelRate:
    fields = dict(_mapping_items(node, path, "a model price", allowed=MODEL_FIELDS))
    provider_node = fields.pop("provider", None)
    provider = None if provider_node is None else _text(provider_node, f"{path}.provider")
    prices: dict[str, str] = {
        name: _decimal_text(fields[name], f"{path}.{name}", '"0.15"')
        for name in MODEL_PRICE_FIELDS
        if name in fields
    }
    try:
        return model_rate(model, provider, prices)
    except RateValueError as error:
        raise _problem_at(path, error) from None


def _check_entry_name(kind: str, name: str, path: str) -> None:
    try:
        check_name(kind, name)
    except RateValueError as error:
        raise _Problem(path, str(error)) from None


def _problem_at(path: str, error: RateValueError) -> _Problem:
    return _Problem(f"{path}.{error.field}" if error.field else path, str(error))


def _section_items(node: yaml.Node, section: str) -> Iterator[tuple[str, yaml.Node]]:
    """Yield ``(name, value node)`` for each entry of the ``rates`` or ``models`` section."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
        return  # "rates:" with nothing under it
    yield from _mapping_items(node, section, f"the {section} section", allowed=None)


def _mapping_items(
    node: yaml.Node, path: str, what: str, *, allowed: tuple[str, ...] | None
) -> Iterator[tuple[str, yaml.Node]]:
    """Yield a mapping's keys as text with their value nodes.

    Rejects anything but a mapping, non-scalar, empty and duplicate keys and, when
    ``allowed`` is given, keys outside it.
    """
    if not isinstance(node, yaml.MappingNode):
        raise _Problem(path, f"{what} must be a mapping of names to values, not {_kind(node)}")
    seen: set[str] = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL_TAG:
            raise _Problem(path, f"{what} has an empty or non-text key. Write a name as the key")
        key = str(key_node.value)
        key_path = f"{path}.{key}" if path else key
        if key in seen:
            raise _Problem(key_path, "appears twice. Keep one entry")
        seen.add(key)
        if allowed is not None and key not in allowed:
            raise _Problem(key_path, _unknown_key_message(key, allowed))
        yield key, value_node


def _unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"Did you mean {close[0]}? " if close else ""
    return f"unknown key {key!r}. {hint}Allowed keys: {', '.join(allowed)}"


def _text(node: yaml.Node, path: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG:
        raise _Problem(path, f"expected text, not {_kind(node)}")
    return str(node.value)


def _decimal_text(node: yaml.Node, path: str, example: str) -> str:
    """Return the text of a money value, rejecting unquoted floats and non-scalars."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG:
        raise _Problem(path, f"expected a quoted decimal such as {example}, not {_kind(node)}")
    if node.tag == _FLOAT_TAG:
        raise _Problem(
            path,
            f"{node.value} is written without quotes, so YAML reads it as a float, which "
            f'is not exact; write it as a quoted decimal such as "{node.value}"',
        )
    # An unquoted integer is exact, so it passes on as text. The other YAML types
    # (booleans, dates) are never amounts.
    if node.tag not in (_STR_TAG, _INT_TAG):
        raise _Problem(
            path,
            f"{node.value} is not a decimal number; write it as a quoted decimal such as {example}",
        )
    return str(node.value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL_TAG:
        return "an empty value"
    return f"the value {node.value!r}"
