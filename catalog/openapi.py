"""Schema of catalog fields that drf-spectacular cannot infer (registered in CatalogConfig.ready)."""

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension


class CustomerEmailFieldExtension(OpenApiSerializerFieldExtension):
    """Sent: an ASCII address (`format: email`); answered: the email as held, which for a
    customer that came from Stripe may be internationalised (`format: idn-email`)."""

    target_class = "catalog.serializers.CustomerEmailField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "response":
            schema["format"] = "idn-email"
        return schema


class InvoiceLineExtension(OpenApiSerializerExtension):
    """An invoice line takes description, quantity and unit_amount and nothing else (an unknown
    key is a 400): said in the request's schema with `additionalProperties: false`."""

    target_class = "catalog.invoice_serializers.InvoiceLineSerializer"

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema
