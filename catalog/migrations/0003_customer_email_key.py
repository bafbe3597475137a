"""Uniqueness of customers' emails regardless of case, the same on SQLite and PostgreSQL: a
case-folded `email_key` computed in Python (Customer.save) replaces the index on LOWER(email),
which SQLite folds for ASCII letters only."""

from django.db import migrations, models

BATCH = 1000


def fill_email_keys(apps, schema_editor):
    """Key every customer's email. Customers that were distinct under LOWER() but share a key
    (x@bücher.example and x@BÜCHER.example on SQLite; ß and ss anywhere) keep their emails: the
    oldest gets the key, the others none, so the unique index can be built; they are listed."""
    Customer = apps.get_model("catalog", "Customer")
    seen: set[str] = set()
    unkeyed: list[int] = []
    batch = []
    for customer in Customer.objects.exclude(email=None).exclude(email="").order_by("pk").only("pk", "email"):
        key = customer.email.casefold()
        if key in seen:
            unkeyed.append(customer.pk)
            continue
        seen.add(key)
        customer.email_key = key
        batch.append(customer)
        if len(batch) >= BATCH:
            Customer.objects.bulk_update(batch, ["email_key"])
            batch = []
    Customer.objects.bulk_update(batch, ["email_key"])
    if unkeyed:
        print(f"\n  customers sharing an email with an older one regardless of case (no email_key): {unkeyed}")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0002_customer_stripe_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="email_key",
            field=models.CharField(blank=True, editable=False, max_length=1536, null=True),
        ),
        migrations.RunPython(fill_email_keys, migrations.RunPython.noop, elidable=True),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                condition=models.Q(email_key__isnull=False), fields=("email_key",), name="customer_email_key_unique"
            ),
        ),
        migrations.RemoveConstraint(
            model_name="customer",
            name="customer_email_unique_ci",
        ),
    ]
