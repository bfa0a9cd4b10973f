"""The flask-smorest Blueprint every service uses.

Validation errors are 400 (and documented as such in the OpenAPI), JSON nested too deeply for
Python's parser is a malformed body rather than a crash, and a `multipart` location reads form fields
and files as one, so every missing part of an upload is reported at once.
"""
from __future__ import annotations

import json

import flask_smorest
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError as error:  # json.loads gives up on deep nesting with RecursionError
            raise json.JSONDecodeError("JSON nested too deeply", "", 0) from error

    def load_multipart(self, req, schema):
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING, "multipart": "multipart/form-data",
    }
