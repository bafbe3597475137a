import factory

from catalog.models import Customer, Invoice


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class InvoiceFactory(factory.django.DjangoModelFactory):
    """A draft with one line of 2 × 12.50 (total 2500); `status` and `number` as given."""

    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    currency = "eur"
    lines = factory.LazyFunction(lambda: [{"description": "Consulting", "quantity": 2, "unit_amount": 1250}])
