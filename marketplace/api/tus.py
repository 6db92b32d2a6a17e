"""The tus 1.0 resumable upload protocol: core, creation (with upload), termination, checksum,
expiration. Standard clients work unchanged (tuspy, tus-js-client).

Creation: `POST /api/v1/vendor/models/<slug>/versions/<id>/uploads` with `Upload-Length` and
`Upload-Metadata: filename <base64 relative path>`; the upload then lives at
`/api/v1/uploads/<uuid>` (HEAD for the offset, PATCH to append, DELETE to cancel).
Authentication: `Authorization: Bearer <token>`, or the portal session (with its CSRF token).
"""

from __future__ import annotations

import base64
import binascii
from email.utils import format_datetime

from django.conf import settings
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from ..authentication import authenticate
from ..errors import InvalidInput, MarketplaceError, NotAuthenticated, NotFound
from ..models import Model, Upload, Version
from ..services import uploads as upload_services
from .errors import error_from

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"


def _tus_headers(response: HttpResponse, upload: Upload | None = None) -> HttpResponse:
    response["Tus-Resumable"] = TUS_VERSION
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = EXTENSIONS
    response["Tus-Max-Size"] = str(settings.MAX_ARTIFACT_SIZE)
    response["Tus-Checksum-Algorithm"] = ",".join(upload_services.CHECKSUM_ALGORITHMS)
    response["Access-Control-Expose-Headers"] = "Location, Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable"
    response["Cache-Control"] = "no-store"
    if upload is not None:
        response["Upload-Offset"] = str(upload.offset)
        response["Upload-Length"] = str(upload.length)
        if upload.completed_at is None:
            response["Upload-Expires"] = format_datetime(upload.expires_at, usegmt=True)
    return response


def _error(exc: MarketplaceError) -> HttpResponse:
    return _tus_headers(error_from(exc))


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def _authenticate(request):
    """The bearer token's user, else the session's (which must pass the CSRF check)."""
    user, token = authenticate(request)
    if token is not None:
        return user
    if user.is_authenticated:
        check = _CsrfCheck(lambda req: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise MarketplaceError(f"CSRF check failed: {reason}", code="csrf_failed", status=403)
        return request.user
    raise NotAuthenticated("uploads need a vendor's API token or portal session", code="not_authenticated")


def _method(request) -> str:
    """The request's method; `X-HTTP-Method-Override` (tus-js-client's `overridePatchMethod`)
    turns a POST into another method for bearer-token clients only: for a session (cookie) it
    would let a plain form POST act as a PATCH or DELETE."""
    override = request.META.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").strip()
    if override and request.method == "POST" and request.META.get("HTTP_AUTHORIZATION"):
        return override.upper()
    return request.method.upper()


def request_body(request) -> tuple[object, int | None]:
    """(stream, length) of a request's body. The length is Django's `CONTENT_LENGTH` (there is no
    `HTTP_CONTENT_LENGTH`); without it (`Transfer-Encoding: chunked`) it is None and the body is
    read to its end: from the server's own terminated input where it provides one (gunicorn
    decodes the chunks; Django's request stream would read nothing without a length)."""
    raw = (request.META.get("CONTENT_LENGTH") or "").strip()
    if raw:
        if not raw.isdigit():
            raise InvalidInput("Content-Length must be a non-negative integer", code="invalid_header")
        return request, int(raw)
    if request.META.get("wsgi.input_terminated") and "wsgi.input" in request.META:
        return request.META["wsgi.input"], None
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and "wsgi.input" in request.META:
        # a WSGI server that leaves the chunks undecoded (Django's development server): the body
        # would read as empty, and an empty file would be stored in its place
        raise MarketplaceError(
            "this server cannot read a chunked body: send Content-Length (or upload with tus)", code="length_required", status=411
        )
    return request, None


def _check_resumable(request) -> None:
    if request.META.get("HTTP_TUS_RESUMABLE") != TUS_VERSION:
        raise MarketplaceError(f"send `Tus-Resumable: {TUS_VERSION}`", code="tus_version", status=412)


def _parse_metadata(header: str) -> dict[str, str]:
    metadata = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            metadata[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(f"Upload-Metadata value for {key!r} is not base64 UTF-8", code="invalid_metadata") from exc
    return metadata


def _int_header(request, name: str) -> int | None:
    raw = request.META.get("HTTP_" + name.upper().replace("-", "_"))
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidInput(f"{name} must be a non-negative integer", code="invalid_header")
    return int(raw)


@csrf_exempt
def creation(request, slug: str, version_id: int):
    try:
        method = _method(request)
        if method == "OPTIONS":
            return _tus_headers(HttpResponse(status=204))
        if method != "POST":
            return _tus_headers(HttpResponse(status=405))
        _check_resumable(request)
        user = _authenticate(request)
        version = Version.objects.filter(pk=version_id, model__slug=slug, model__vendor__user=user).first()
        if version is None or not Model.objects.filter(vendor__user=user, slug=slug).exists():
            raise NotFound(f"you have no draft #{version_id} of {slug!r}", code="version_not_found")
        if request.META.get("HTTP_UPLOAD_DEFER_LENGTH"):
            raise InvalidInput("Upload-Defer-Length is not supported: send Upload-Length", code="defer_length")
        length = _int_header(request, "Upload-Length")
        if length is None:
            raise InvalidInput("send Upload-Length", code="invalid_length")
        metadata = _parse_metadata(request.META.get("HTTP_UPLOAD_METADATA", ""))
        path = metadata.get("filename") or metadata.get("name") or ""
        stream, body_length = request_body(request)
        upload = upload_services.upload_create(user=user, version=version, path=path, length=length, metadata=metadata)
        if request.content_type == "application/offset+octet-stream" and body_length != 0 and upload.completed_at is None:
            # creation-with-upload: the body is the first chunk
            upload = upload_services.upload_append(
                upload=upload, offset=0, stream=stream, content_length=body_length,
                checksum=request.META.get("HTTP_UPLOAD_CHECKSUM"),
            )
    except MarketplaceError as exc:
        return _error(exc)
    response = _tus_headers(HttpResponse(status=201), upload)
    response["Location"] = request.build_absolute_uri(f"/api/v1/uploads/{upload.pk}")
    return response


@csrf_exempt
def resource(request, upload_id):
    try:
        method = _method(request)
        if method == "OPTIONS":
            return _tus_headers(HttpResponse(status=204))
        _check_resumable(request)
        user = _authenticate(request)
        upload = upload_services.upload_get(user=user, upload_id=upload_id)
        if method == "HEAD":
            response = _tus_headers(HttpResponse(status=200), upload)
            if upload.metadata:
                response["Upload-Metadata"] = ",".join(
                    f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in upload.metadata.items()
                )
            return response
        if method == "PATCH":
            if request.content_type != "application/offset+octet-stream":
                return _error(MarketplaceError("PATCH needs Content-Type: application/offset+octet-stream", code="content_type", status=415))
            offset = _int_header(request, "Upload-Offset")
            if offset is None:
                raise InvalidInput("send Upload-Offset", code="invalid_header")
            stream, body_length = request_body(request)
            upload = upload_services.upload_append(
                upload=upload, offset=offset, stream=stream, content_length=body_length,
                checksum=request.META.get("HTTP_UPLOAD_CHECKSUM"),
            )
            return _tus_headers(HttpResponse(status=204), upload)
        if method == "DELETE":
            upload_services.upload_terminate(upload=upload)
            return _tus_headers(HttpResponse(status=204))
        return _tus_headers(HttpResponse(status=405))
    except MarketplaceError as exc:
        return _error(exc)
