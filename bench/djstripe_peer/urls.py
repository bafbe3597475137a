"""dj-stripe's own URLs (its webhook view: /stripe/webhook/<endpoint uuid>/), as its docs wire them."""

from django.urls import include, path

urlpatterns = [path("stripe/", include("djstripe.urls", namespace="djstripe"))]
