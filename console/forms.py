"""The staff console's customer form: field checks here, business rules in catalog.services."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from catalog import services
from catalog.models import Customer


class CustomerForm(forms.Form):
    # A plain Form, not a ModelForm: model validation would report the case-insensitive email
    # constraint in its own words; the service's duplicate check is the one rule we show.
    name = forms.CharField(label="Name", max_length=255)
    email = forms.EmailField(label="Email", max_length=254, required=False)

    def __init__(self, *args, instance: Customer | None = None, **kwargs) -> None:
        self.instance = instance
        if instance is not None:
            kwargs.setdefault("initial", {"name": instance.name, "email": instance.email or ""})
        super().__init__(*args, **kwargs)

    def save(self) -> Customer | None:
        """Create or update through the catalog services. Returns None, with the service's
        reasons added to the form's fields, when a business rule refuses the change."""
        try:
            if self.instance is None:
                return services.customer_create(**self.cleaned_data)
            return services.customer_update(customer=self.instance, **self.cleaned_data)
        except ValidationError as exc:
            self.add_error(None, exc)
            return None
