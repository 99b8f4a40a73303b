"""The one schema loader (covertreex.schema, which the plugin uses) reads installed packages, zipped ones
included."""

import json
import zipfile

import pytest

from covertreex import schema
from covertreex.errors import CorruptFileError, InvalidInputError
from covertreex.telemetry import schema_resource


def test_default_schema_is_the_one_shipped_in_covertreex():
    from importlib import resources

    resource = schema_resource()
    assert resource == "covertreex:schemas/query_telemetry.v5.json"
    shipped = resources.files("covertreex").joinpath("schemas", "query_telemetry.v5.json").read_text()
    assert schema.load(resource) == json.loads(shipped)
    assert schema.load(resource)["$id"] == "https://covertreex.dev/schemas/query_telemetry.v5.json"


def test_a_schema_inside_a_zipped_package_is_found_and_checks_formats(tmp_path, monkeypatch):
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"when": {"type": "string", "format": "date-time"}},
    }
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pcct_zipped_pkg/__init__.py", "")
        zf.writestr("pcct_zipped_pkg/schemas/record.json", json.dumps(document))
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.delitem(__import__("sys").modules, "pcct_zipped_pkg", raising=False)
    resource = "pcct_zipped_pkg:schemas/record.json"
    assert schema.errors({"when": "2026-01-02T03:04:05Z"}, resource) == []
    assert schema.errors({"when": "tomorrow"}, resource) == ["when: 'tomorrow' is not a 'date-time'"]


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ("no-colon.json", "schema must be 'package:path/to/schema.json', got 'no-colon.json'"),
        (None, "schema must be 'package:path/to/schema.json', got None"),
        ("pcct_no_such_package:x.json", "schema 'pcct_no_such_package:x.json' cannot be read"),
        ("covertreex:schemas/missing.json", "schema 'covertreex:schemas/missing.json' cannot be read"),
        ("covertreex:schemas", "schema 'covertreex:schemas' cannot be read"),
        ("json:x.json", "schema 'json:x.json' cannot be read"),
        ("os:x.json", "schema 'os:x.json' cannot be read"),  # 3.11: not a package; 3.12: an orphan path
    ],
)
def test_bad_schema_names_are_errors_naming_them(resource, message):
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        schema.load(resource)


@pytest.mark.parametrize(("text", "message"), [
    ("{", "schema 'pcct_corrupt_pkg:schema.json' is not strict JSON: Expecting property name"),
    ('{"type": "object", "type": "array"}',
     "schema 'pcct_corrupt_pkg:schema.json' is not strict JSON: the key 'type' appears twice"),
    ("\xff\xfe", "schema 'pcct_corrupt_pkg:schema.json' cannot be read: 'utf-8' codec"),
    ('{"type": 5}',
     "schema 'pcct_corrupt_pkg:schema.json' is not a valid JSON Schema (draft 2020-12): 5 is not"),
])
def test_a_corrupt_schema_file_is_an_error_naming_it(tmp_path, monkeypatch, text, message):
    package = tmp_path / "pcct_corrupt_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "schema.json").write_bytes(text.encode("latin-1"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "pcct_corrupt_pkg", raising=False)
    with pytest.raises(CorruptFileError if "codec" not in message else InvalidInputError,
                       match=message.replace("(", r"\(").replace(")", r"\)")):
        schema.validator("pcct_corrupt_pkg:schema.json")
