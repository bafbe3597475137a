import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from catalog import services
from catalog.selectors import customers_with_email
from catalog.models import CatalogIntegration, CatalogItem, Customer, SyncStatus
from sync.models import OutboxMessage

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db


def outward_events(item_id: int) -> list[dict]:
    return [
        row.payload
        for row in OutboxMessage.objects.filter(topic="stripe_customer_outward", key=str(item_id)).order_by("id")
    ]


def test_customer_is_a_polymorphic_catalog_item():
    customer = services.customer_create(name="Ada", email="ada@example.com")
    item = CatalogItem.objects.get(pk=customer.pk)
    assert isinstance(item, Customer)
    assert item.catalog_type == "customer"
    assert item.created_at and item.updated_at


def test_email_is_unique_regardless_of_case():
    services.customer_create(name="Ada", email="Ada@Example.com")
    with pytest.raises(ValidationError) as error:
        services.customer_create(name="Other", email="ada@example.COM")
    assert "email" in error.value.message_dict
    assert Customer.objects.count() == 1


def test_customers_without_email_are_storable_many_times():
    services.customer_create(name="No mail 1", email=None)
    services.customer_create(name="No mail 2", email="")
    assert Customer.objects.filter(email__isnull=True).count() == 2


def test_create_update_delete_each_record_an_outward_event_in_the_same_transaction():
    customer = services.customer_create(name="Ada", email="ada@example.com")
    services.customer_update(customer=customer, name="Ada Lovelace")
    mapping = CatalogIntegration.objects.get(catalog_item=customer, integration_type="stripe")
    assert mapping.status == SyncStatus.PENDING and mapping.integration_id is None

    events = outward_events(customer.pk)
    assert [event["kwargs"]["action"] for event in events] == ["upsert", "upsert"]
    assert {event["task"] for event in events} == {"stripe.push_customer"}
    assert len({event["kwargs"]["event_id"] for event in events}) == 2

    # Deleting a customer never synced has nothing to delete remotely.
    customer_id = customer.pk
    services.customer_delete(customer=customer)
    assert [event["kwargs"]["action"] for event in outward_events(customer_id)] == ["upsert", "upsert"]


def test_delete_of_a_synced_customer_carries_its_stripe_id():
    customer = CustomerFactory()
    customer_id = customer.pk
    services.integration_record_synced(item_id=customer_id, integration_type="stripe", integration_id="cus_123")
    services.customer_delete(customer=customer)
    delete = outward_events(customer_id)[-1]["kwargs"]
    assert delete["action"] == "delete" and delete["external_id"] == "cus_123"
    assert not CatalogIntegration.objects.filter(integration_id="cus_123").exists()


def test_rolled_back_change_leaves_no_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        services.customer_create(name="Ghost", email="ghost@example.com")
        raise RuntimeError("roll back")
    assert not Customer.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_update_without_change_writes_nothing():
    customer = CustomerFactory()
    before = OutboxMessage.objects.count()
    services.customer_update(customer=customer, name=customer.name, email=customer.email.upper())
    assert OutboxMessage.objects.count() == before + 1  # the email's case changed
    services.customer_update(customer=customer, name=customer.name, email=customer.email)
    assert OutboxMessage.objects.count() == before + 1


def test_mapping_external_id_is_unique_per_integration():
    first, second = CustomerFactory(), CustomerFactory()
    services.integration_record_synced(item_id=first.pk, integration_type="stripe", integration_id="cus_same")
    with pytest.raises(Exception), transaction.atomic():
        services.integration_record_synced(item_id=second.pk, integration_type="stripe", integration_id="cus_same")


def test_record_error_keeps_pending_until_final():
    customer = CustomerFactory()
    services.integration_record_error(item_id=customer.pk, integration_type="stripe", error="boom", final=False)
    mapping = CatalogIntegration.objects.get(catalog_item=customer)
    assert (mapping.status, mapping.last_error) == (SyncStatus.PENDING, "boom")
    services.integration_record_error(item_id=customer.pk, integration_type="stripe", error="bad", final=True)
    mapping.refresh_from_db()
    assert (mapping.status, mapping.last_error) == (SyncStatus.FAILED, "bad")
    services.integration_record_synced(item_id=customer.pk, integration_type="stripe", integration_id="cus_1")
    mapping.refresh_from_db()
    assert (mapping.status, mapping.last_error) == (SyncStatus.SYNCED, "")


def test_request_resync_marks_pending_and_enqueues_a_push():
    from sync.outward import request_resync

    customer = CustomerFactory()
    services.integration_record_synced(item_id=customer.pk, integration_type="stripe", integration_id="cus_r")
    before = len(outward_events(customer.pk))
    assert request_resync(item=customer) == 1
    assert CatalogIntegration.objects.get(catalog_item=customer).status == SyncStatus.PENDING
    assert outward_events(customer.pk)[-1]["kwargs"]["action"] == "upsert"
    assert len(outward_events(customer.pk)) == before + 1


def _query_plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # With a sequential scan ruled out, the planner shows whether an index can serve it.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_email_lookups_use_the_case_insensitive_unique_index():
    """Every save checks the email: a table scan there made each save cost milliseconds per
    100,000 customers (docs/benchmarks.md)."""
    services.customer_create(name="Ada", email="Ada@Example.com")
    assert services.customer_email_taken(email="ADA@example.COM")
    assert not services.customer_email_taken(email="grace@example.com")
    plan = _query_plan(customers_with_email("ADA@example.COM"))
    assert "customer_email_key_unique" in plan, plan


@pytest.mark.parametrize("stored", ["CH", "ch", "GBR", "XX", "Switzerland", ""])
def test_the_address_country_reads_as_django_countries_gives_it(stored):
    """`Customer.address` reads a canonical code straight from the instance (catalog/models.py);
    whatever is stored, it must give what the field's Country object says."""
    customer = Customer(address_country=stored)
    assert customer.address["country"] == str(customer.address_country or "")
