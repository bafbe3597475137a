from django import template
from django.utils.html import format_html

from catalog.currencies import amount_format
from catalog.models import InvoiceStatus

register = template.Library()

# Bootstrap colours of the invoice statuses: open ones stand out, settled ones recede.
STATUS_COLOURS = {
    InvoiceStatus.DRAFT: "secondary",
    InvoiceStatus.OPEN: "primary",
    InvoiceStatus.PAID: "success",
    InvoiceStatus.VOID: "dark",
    InvoiceStatus.UNCOLLECTIBLE: "danger",
}


@register.filter
def money(amount: int | None, currency: str) -> str:
    """An amount in minor units with its currency: `{{ invoice.total|money:invoice.currency }}`."""
    return "" if amount is None or not currency else amount_format(int(amount), currency)


@register.simple_tag
def invoice_badge(status: str) -> str:
    label = InvoiceStatus(status).label if status in InvoiceStatus.values else status
    return format_html(
        '<span class="badge text-bg-{}" data-invoice-status="{}">{}</span>',
        STATUS_COLOURS.get(status, "light"),
        status,
        label,
    )
