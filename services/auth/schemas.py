"""Request and response bodies of the auth API (marshmallow)."""
from __future__ import annotations

import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from .credentials import password_problems

INVALID_EMAIL = "Enter a valid email address."


# RFC 5321 dot-atom local part (no quoted strings) at a host name (no IP literal, a dotted name
# whose last label is not all digits): what every mail server delivers to and nothing more exotic.
ADDRESS = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+(?![0-9]+$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
)


class EmailAddress(fields.String):
    """An email address, trimmed and lower-cased: an ASCII dot-atom at a host name (no quoted local
    part, no IP literal), so every SMTP server can deliver to it."""

    validate_address = validate.Email(error=INVALID_EMAIL)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        address = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if len(address) > 254 or not ADDRESS.fullmatch(address):
            raise ValidationError(INVALID_EMAIL)
        return self.validate_address(address)


class BodySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # the frontend sends extra fields (privacy_policy)


class RegisterSchema(BodySchema):
    email = EmailAddress(required=True)
    password = fields.String(required=True, load_only=True)
    confirmed_password = fields.String(required=True, load_only=True)

    @validates_schema(skip_on_field_errors=True)
    def strong_and_confirmed(self, data, **kwargs):
        errors = {}
        problems = password_problems(data["password"], data["email"])
        if problems:
            errors["password"] = problems
        if data["password"] != data["confirmed_password"]:
            errors["confirmed_password"] = ["Passwords do not match."]
        if errors:
            raise ValidationError(errors)


class LoginSchema(BodySchema):
    email = EmailAddress(required=True)
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1))


class EmailSchema(BodySchema):
    email = EmailAddress(required=True)


class NewPasswordSchema(BodySchema):
    new_password = fields.String(required=True, load_only=True)
    confirm_password = fields.String(required=True, load_only=True)

    @validates_schema(skip_on_field_errors=True)
    def confirmed(self, data, **kwargs):
        if data["new_password"] != data["confirm_password"]:
            raise ValidationError({"confirm_password": ["Passwords do not match."]})


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.String()


class RegisteredSchema(Schema):
    user = fields.Nested(UserSchema)


class LoginUserSchema(Schema):
    id = fields.Integer()
    username = fields.String(metadata={"description": "The account's email address."})


class LoginResultSchema(Schema):
    detail = fields.String()
    user = fields.Nested(LoginUserSchema)


class DetailSchema(Schema):
    detail = fields.String()


class MessageSchema(Schema):
    message = fields.String()


class ApiErrorSchema(Schema):
    """Every error: `{"detail": "..."}`, or for invalid fields `{"<field>": ["..."]}`."""

    detail = fields.String()
