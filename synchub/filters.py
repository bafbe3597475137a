import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from rest_framework import filters
from rest_framework.exceptions import ValidationError


class StableOrderingFilter(filters.OrderingFilter):
    """Ordering with the primary key as the last tiebreaker, so pages never overlap or skip rows
    when the chosen field has equal values."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not any(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering.append("-id")
        return ordering


class SearchFilter(filters.SearchFilter):
    """DRF's search, whose refused terms (a NUL character) are a field error of `search`, shaped as
    every other 400 is ({field: [messages]}), not a bare list of messages."""

    def get_search_terms(self, request):
        try:
            return super().get_search_terms(request)
        except ValidationError as exc:
            raise ValidationError({self.search_param: exc.detail}) from None


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC.

    Python takes offsets up to ±23:59 but PostgreSQL only ±15:59 ("time zone displacement out
    of range", a 500), so the database only ever sees UTC; a value that UTC cannot hold (year 1
    at +01:00, year 9999 at -01:00) is a field error instead of an OverflowError.
    """

    default_error_messages = {"out_of_range": "Out of range once converted to UTC."}

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.timezone.utc)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["out_of_range"], code="out_of_range") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, querying in UTC (see UtcIsoDateTimeField)."""

    field_class = UtcIsoDateTimeField
