from rest_framework import serializers

from .models import CatalogIntegration, Customer
from .services import DUPLICATE_EMAIL_MESSAGE, customer_email_taken, normalize_email


class CustomerSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(max_length=254, required=False, allow_null=True, allow_blank=True)

    class Meta:
        model = Customer
        fields = ["id", "name", "email", "catalog_type", "created_at", "updated_at"]
        read_only_fields = ["id", "catalog_type", "created_at", "updated_at"]
        extra_kwargs = {"name": {"required": True, "allow_blank": False}}

    def validate_email(self, value: str | None) -> str | None:
        value = normalize_email(value)
        exclude_id = self.instance.pk if self.instance is not None else None
        if customer_email_taken(email=value, exclude_id=exclude_id):
            raise serializers.ValidationError(DUPLICATE_EMAIL_MESSAGE)
        return value


class IntegrationStatusSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="integration_type")
    external_id = serializers.CharField(source="integration_id", allow_null=True)

    class Meta:
        model = CatalogIntegration
        fields = ["type", "external_id", "status", "last_synced_at", "last_error"]


class CustomerIntegrationStatusSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField()
    synced = serializers.BooleanField(help_text="True when every integration has confirmed the customer.")
    integrations = IntegrationStatusSerializer(many=True)


class IntegrationSerializer(serializers.ModelSerializer):
    customer_id = serializers.IntegerField(source="catalog_item_id", read_only=True)
    customer_name = serializers.CharField(source="catalog_item.customer.name", read_only=True, default=None)
    customer_email = serializers.CharField(source="catalog_item.customer.email", read_only=True, default=None)

    class Meta:
        model = CatalogIntegration
        fields = [
            "id",
            "customer_id",
            "customer_name",
            "customer_email",
            "integration_type",
            "integration_id",
            "status",
            "last_synced_at",
            "last_error",
            "created_at",
        ]


class CustomerBulkRowSerializer(serializers.Serializer):
    id = serializers.IntegerField(required=False, help_text="Update this customer; omit to create one.")
    name = serializers.CharField(required=False)
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)


class CustomerBulkRequestSerializer(serializers.Serializer):
    customers = CustomerBulkRowSerializer(many=True)


class CustomerBulkResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "error"])
    id = serializers.IntegerField(allow_null=True)
    errors = serializers.DictField()


class CustomerBulkResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = CustomerBulkResultSerializer(many=True)
