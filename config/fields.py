"""Input fields that take only what the schema says: strict booleans, query parameters that may not be empty.

DRF is lenient where generated clients are strict: its BooleanField takes
``0``, ``"1"``, ``"on"`` and ``"yes"``, and an optional field sent empty
(``?period=``) counts as absent, so the request silently gets the default.
The schema promises a boolean and an enum; the API refuses anything else with
400 ``invalid`` naming the field.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictBooleanField(serializers.BooleanField):
    """``true``/``false`` only: JSON booleans, or the words a form encodes them as."""

    TRUE_VALUES = {True, "true", "True"}
    FALSE_VALUES = {False, "false", "False"}
    NULL_VALUES = set()
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        # `1 in {True}` and `0 in {False}` hold in Python: integers are refused before the set lookup.
        if isinstance(data, bool) or (isinstance(data, str) and data in self.TRUE_VALUES | self.FALSE_VALUES):
            return data in self.TRUE_VALUES
        self.fail("invalid", input=data)


class QuerySerializer(serializers.Serializer):
    """Query parameters: one sent empty (``?status=``) is invalid, not absent, unless its field allows blanks."""

    def to_internal_value(self, data):
        empty = {name: ["May not be empty: leave the parameter out instead."]
                 for name, field in self.fields.items()
                 if not getattr(field, "allow_blank", False) and hasattr(data, "get") and data.get(name) == ""}
        if empty:
            raise serializers.ValidationError(empty)
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "maxLength": 254, "anyOf": [{"format": "email"}, {"maxLength": 0}]})
class EmailOrEmptyField(serializers.CharField):
    """An email address, or the empty string for none: the schema says both (``format: email`` alone refuses "").

    A CharField that checks the address itself: drf-spectacular would add ``format: email`` to the whole
    field for an EmailField or an EmailValidator in ``validators``.
    """

    default_error_messages = {"invalid_email": "Enter a valid email address."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value:
            try:
                validate_email(value)
            except DjangoValidationError:
                self.fail("invalid_email")
        return value
