"""JSON Schemas inside installed packages: the one loader, used by covertreex's telemetry and the plugin.

A schema is named by a resource string ``"package:path/inside/package.json"`` and read with
:mod:`importlib.resources`, so it is found in an installed (even zipped) package as well as in a checkout.
Each schema is read and checked once per process; records are validated with a draft 2020-12 validator
with format checking on (``date-time`` is really checked).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from covertreex.errors import CorruptFileError, InvalidInputError


def _split(resource: str) -> tuple[str, str]:
    package, sep, path = resource.partition(":") if isinstance(resource, str) else ("", "", "")
    if not (sep and package and path):
        raise InvalidInputError(f"schema must be 'package:path/to/schema.json', got {resource!r}")
    return package, path


@cache
def load(resource: str) -> dict:
    """The schema document named by `resource`."""
    package, path = _split(resource)
    try:
        text = resources.files(package).joinpath(path).read_text(encoding="utf-8")
    except TypeError as exc:  # a module that is not a package
        raise InvalidInputError(f"schema {resource!r} cannot be read: {exc}") from None
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            UnicodeDecodeError) as exc:
        raise InvalidInputError(f"schema {resource!r} cannot be read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"schema {resource!r} is not JSON: {exc}") from None


@cache
def validator(resource: str):
    """A draft 2020-12 validator with format checking, after checking the schema itself."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    schema = load(resource)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise CorruptFileError(f"schema {resource!r} is not a valid JSON Schema (draft 2020-12): "
                               f"{exc.message}") from None
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(record, resource: str) -> list[str]:
    """Every violation of `record` against `resource`, as 'path: message' (empty when valid)."""
    found = sorted(validator(resource).iter_errors(record), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<record>'}: {e.message}" for e in found]
