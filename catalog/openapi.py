"""Schema of catalog fields that drf-spectacular cannot infer (registered in CatalogConfig.ready)."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension


class CustomerEmailFieldExtension(OpenApiSerializerFieldExtension):
    """Sent: an ASCII address (`format: email`); answered: the email as held, which for a
    customer that came from Stripe may be internationalised (`format: idn-email`)."""

    target_class = "catalog.serializers.CustomerEmailField"

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "response":
            schema["format"] = "idn-email"
        return schema
