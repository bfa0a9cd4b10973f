"""The flask-smorest Blueprint every service uses.

Validation errors are 400 (and documented as such in the OpenAPI), JSON nested too deeply for
Python's parser is a malformed body rather than a crash, and a `multipart` location reads form fields
and files as one, so every missing part of an upload is reported at once. No string of any location
(JSON, form, multipart, query, file names) may hold a control character other than tab and line
breaks, or a lone surrogate: PostgreSQL cannot store NUL or surrogates, and no field means either.
"""
from __future__ import annotations

import json
import unicodedata

import flask_smorest
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict, FileStorage

CONTROL_CHARACTER = "Control characters are not allowed."
ALLOWED_CONTROLS = frozenset("\t\n\r")


def has_control_character(text: str) -> bool:
    """Whether `text` holds a C0/C1 control character (tab, CR, LF excepted) or a lone surrogate."""
    return any(
        unicodedata.category(char) in ("Cc", "Cs") and char not in ALLOWED_CONTROLS for char in text
    )


def _strings(value):
    """Every string in a parsed value: JSON containers, keys, and uploaded files' names."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, FileStorage):
        yield value.filename or ""
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError as error:  # json.loads gives up on deep nesting with RecursionError
            raise json.JSONDecodeError("JSON nested too deeply", "", 0) from error

    def _load_location_data(self, *, schema, req, location):
        data = super()._load_location_data(schema=schema, req=req, location=location)
        # form, query and multipart come as a proxy over a MultiDict: check every value of every key.
        pairs = data.data.items(multi=True) if hasattr(getattr(data, "data", None), "items") else (
            data.items() if isinstance(data, dict) else [("_schema", data)])
        fields = {}
        for key, value in pairs:
            if any(has_control_character(text) for text in _strings([key, value])):
                fields[key if isinstance(key, str) and not has_control_character(key) else "_schema"] = [
                    CONTROL_CHARACTER]
        if fields:
            raise ValidationError(fields)
        return data

    def load_multipart(self, req, schema):
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING, "multipart": "multipart/form-data",
    }
