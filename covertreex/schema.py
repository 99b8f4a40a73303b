"""JSON Schemas inside installed packages: the one loader, used by covertreex's telemetry and the plugin.

A schema is named by a resource string ``"package:path/inside/package.json"`` and read with
:mod:`importlib.resources`, so it is found in an installed (even zipped) package as well as in a checkout.
Each schema is read and checked once per process; records are validated with a draft 2020-12 validator
with format checking on (``date-time`` is really checked).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from covertreex import strict_json
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
        return strict_json.loads(text)
    except ValueError as exc:  # a syntax error, a key twice, a non-finite number
        raise CorruptFileError(f"schema {resource!r} is not strict JSON: {exc}") from None


INT64 = range(-(2**63), 2**63)
"""The integers a strict validator accepts: what the engines' counters and sizes are."""


def _int64(checker, instance) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool) and instance in INT64


@cache
def validator(resource: str, strict: bool = False):
    """A draft 2020-12 validator with format checking, after checking the schema itself. `strict`: an
    'integer' is a JSON integer within int64, as covertreex writes its records, not also 5.0 (the draft's
    rule, for other projects' schemas) or 2**70."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import SchemaError

    schema = load(resource)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise CorruptFileError(f"schema {resource!r} is not a valid JSON Schema (draft 2020-12): "
                               f"{exc.message}") from None
    kind = Draft202012Validator
    if strict:
        kind = validators.extend(kind, type_checker=kind.TYPE_CHECKER.redefine("integer", _int64))
    return kind(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(record, resource: str, strict: bool = False) -> list[str]:
    """Every violation of `record` against `resource` (:func:`validator`), as 'path: message' (empty when
    valid)."""
    found = sorted(validator(resource, strict).iter_errors(record),
                   key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<record>'}: {_message(e)}" for e in found]


def _message(error) -> str:
    """jsonschema's message, except for an integer beyond int64 ('is not of type integer', it said)."""
    beyond = error.validator == "type" and type(error.instance) is int and error.instance not in INT64
    return f"{error.instance} is beyond int64" if beyond else error.message
