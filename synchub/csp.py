"""The Content-Security-Policy (settings.CONTENT_SECURITY_POLICY), with the one page-specific allowance.

Every page of the hub (the console, the admin, Swagger UI at /docs) runs under the policy as
configured: our own static scripts and stylesheets only. DRF's browsable API and its login page
are the exception: DRF's templates (base.html, its form and filter snippets, login_base.html) put
`style="..."` attributes throughout, and copying them all to restyle them would fork DRF. Those
pages alone may use inline style *attributes* (`style-src-attr 'unsafe-inline'`): an attribute
can neither load anything nor run script. `<style>` elements and inline script stay blocked there
too; templates/rest_framework/api.html drops DRF's only ones (its Pygments `<style>` and the
logout link's onclick).
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from rest_framework.renderers import BrowsableAPIRenderer

DRF_TEMPLATE_ALLOWANCE = {"style-src-attr": ["'unsafe-inline'"]}


def renders_drf_templates(request: HttpRequest, response: HttpResponseBase) -> bool:
    """A browsable API page, or DRF's own login page (`api-auth/`)."""
    if isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer):
        return True
    match = getattr(request, "resolver_match", None)
    return match is not None and match.namespace == "rest_framework"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if renders_drf_templates(request, response):
            parts.update = {**(parts.update or {}), **DRF_TEMPLATE_ALLOWANCE}
        return parts

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        # django-csp builds the policy before it reads a view's `csp_exempt`: an exempt answer
        # (the webhooks', read by the sender's servers and never rendered) skips that work, a
        # sixth of the CPU the webhook view costs.
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        if getattr(response, "_csp_exempt", False) and not report_only:
            return response
        return super().process_response(request, response)
