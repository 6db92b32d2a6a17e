"""Model fields shared by the apps: wei amounts as exact integers."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import DecimalValidator
from django.db import models


def _uint256(value):
    if value is not None and not -(2**256) < int(value) < 2**256:
        raise ValidationError("wei amounts are within ±(2^256-1)", code="wei_range")


class WeiField(models.DecimalField):
    """An amount in wei: NUMERIC(78, 0) in the database (fits uint256), `int` in Python.

    Never a float: values are read back as `int`, and saving a non-integral value is refused.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 78)
        kwargs.setdefault("decimal_places", 0)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("max_digits", None)
        kwargs.pop("decimal_places", None)
        return name, path, args, kwargs

    @property
    def validators(self):
        # DecimalValidator expects Decimal; ours are ints, bounded to uint256 instead
        return [v for v in super().validators if not isinstance(v, DecimalValidator)] + [_uint256]

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return int(value)

    def to_python(self, value):
        if value is None or isinstance(value, int):
            return value
        if isinstance(value, float):
            raise TypeError("wei amounts are integers; a float was given")
        parsed = Decimal(str(value))
        if parsed != parsed.to_integral_value():
            raise ValueError(f"wei amounts are integers; {value!r} is not")
        return int(parsed)

    def get_db_prep_save(self, value, connection):
        if isinstance(value, float):
            raise TypeError("wei amounts are integers; a float was given")
        return super().get_db_prep_save(value, connection)
