"""The OpenAPI schema of the API (drf-spectacular): each view's nested serializers, and the error
answers every operation can give, with the error body (`Error {code, message}`).

A view documents itself by convention: `InputSerializer` (the body of a POST or PUT),
`FilterSerializer` (the query string of a GET), `OutputSerializer` (the success body), and
`error_statuses`, the statuses its services can answer besides those any operation of its
kind can (below); `@extend_schema` on a method overrides any of it."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import permissions

from .serializers import ErrorSerializer

BODY_METHODS = ("POST", "PUT", "PATCH")

ERROR_DESCRIPTIONS = {
    400: "invalid input: `code` says what, `fields` which field",
    401: "no API token where one is needed, or a token that is unknown, revoked or expired",
    403: "signed in, but not allowed (not a vendor, not licensed, a sign-in message for another site)",
    404: "no such object (or not one of yours)",
    409: "the request does not fit the object's state",
    410: "gone for good (a revoked version)",
    411: "a chunked body this server cannot read: send Content-Length",
    413: "too large: the file passes MAX_ARTIFACT_SIZE, or your files would pass your storage quota",
    422: "the transaction reverted",
    429: "too many requests, or a spending limit reached: wait `Retry-After` seconds",
    503: "the chain does not answer (or is misconfigured): nothing was changed, retry after `Retry-After` seconds",
}


class ApiSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction) -> str:
        """`ModelListView.OutputSerializer` is the component `ModelListOutput`: the serializers
        nested in views all share a few names."""
        outer, *inner = type(serializer).__qualname__.split(".")
        if not inner:
            return super().get_serializer_name(serializer, direction)
        return outer.removesuffix("View") + "".join(part.removesuffix("Serializer") for part in inner)

    def get_request_serializer(self):
        if self.method in BODY_METHODS and hasattr(self.view, "InputSerializer"):
            return self.view.InputSerializer
        return None

    def get_response_serializers(self):
        return getattr(self.view, "OutputSerializer", None) or super().get_response_serializers()

    def get_override_parameters(self):
        if self.method == "GET" and hasattr(self.view, "FilterSerializer"):
            return [self.view.FilterSerializer]
        return super().get_override_parameters()

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in sorted(self.error_statuses()):
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(ErrorSerializer, str(status), direction=direction)
                responses[str(status)]["description"] = ERROR_DESCRIPTIONS.get(status, "")
        return responses

    def error_statuses(self) -> set[int]:
        """What this operation can answer besides success."""
        view = self.view
        # any operation: a bad bearer token (401) and the API rate limit (429)
        statuses = {401, 429}
        if self.method in BODY_METHODS and self.get_request_serializer() is not None:
            statuses.add(400)
        if self.method == "GET" and hasattr(view, "FilterSerializer"):
            statuses.add(400)
        if any(p is not permissions.AllowAny for p in getattr(view, "permission_classes", ())):
            statuses.add(403)
        if "{" in self.path:
            statuses.add(404)
        declared = getattr(view, "error_statuses", ())
        if isinstance(declared, dict):
            declared = declared.get(self.method.lower(), ())
        return statuses | set(declared)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <API token>` (marketplace/authentication.py) in the schema."""

    target_class = "marketplace.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "an API token (`hm_...`), from /api/v1/auth/siwe"}
