"""URL map: admin, REST API, Hugging Face compatible endpoints, public pages (last: they catch
`/<vendor>` and `/<vendor>/<model>`)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from marketplace import ops, portal, views
from marketplace.api import huggingface as hf
from marketplace.api import oci

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI with its start-up code in a static file: the CSP allows no inline script or style
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema", template_name="marketplace/api_docs.html"), name="api-docs"),
    path("api/models/<str:vendor>/<str:model>", hf.ModelInfoView.as_view(), name="hf-model-info"),
    path("api/models/<str:vendor>/<str:model>/revision/<str:revision>", hf.ModelInfoView.as_view(), name="hf-model-revision"),
    path("api/models/<str:vendor>/<str:model>/tree/<str:revision>", hf.ModelTreeView.as_view(), name="hf-model-tree"),
    path("api/models/<str:vendor>/<str:model>/tree/<str:revision>/<path:path>", hf.ModelTreeView.as_view()),
    # OCI Distribution, pull side (CNCF ModelPack artifacts): before the pages, which catch `/<vendor>/<model>`
    path("v2/", oci.base, name="oci-base"),
    path("v2/token", oci.token, name="oci-token"),
    path("v2/<str:vendor>/<str:model>/manifests/<str:reference>", oci.manifest, name="oci-manifest"),
    path("v2/<str:vendor>/<str:model>/blobs/<str:digest>", oci.blob, name="oci-blob"),
    path("v2/<str:vendor>/<str:model>/tags/list", oci.tags, name="oci-tags"),
    path("v2/<str:vendor>/<str:model>/referrers/<str:digest>", oci.referrers, name="oci-referrers"),
    re_path(r"^v2/(?P<rest>.*)$", oci.unsupported, name="oci-unsupported"),
    path("portal/signup", portal.signup, name="signup"),
    path("portal/login", auth_views.LoginView.as_view(template_name="marketplace/portal/login.html"), name="login"),
    path("portal/logout", auth_views.LogoutView.as_view(), name="logout"),
    path("portal/password-reset", auth_views.PasswordResetView.as_view(template_name="marketplace/portal/password_reset.html"), name="password_reset"),
    path("portal/password-reset/sent", auth_views.PasswordResetDoneView.as_view(template_name="marketplace/portal/password_reset_done.html"), name="password_reset_done"),
    path("portal/reset/<uidb64>/<token>", auth_views.PasswordResetConfirmView.as_view(template_name="marketplace/portal/password_reset_confirm.html"), name="password_reset_confirm"),
    path("portal/reset/done", auth_views.PasswordResetCompleteView.as_view(template_name="marketplace/portal/password_reset_complete.html"), name="password_reset_complete"),
    path("portal/", portal.dashboard, name="portal-home"),
    path("portal/wallet", portal.wallet, name="portal-wallet"),
    path("portal/signing-key", portal.signing_key_page, name="portal-signing-key"),
    path("portal/royalties", portal.royalties_page, name="portal-royalties"),
    path("portal/licences", portal.licences_page, name="portal-licences"),
    path("portal/tokens", portal.tokens_page, name="portal-tokens"),
    path("portal/tokens/<str:prefix>/revoke", portal.token_revoke, name="portal-token-revoke"),
    path("portal/fleet", portal.fleet_page, name="portal-fleet"),
    path("portal/fleet/<str:address>/remove", portal.fleet_device_remove, name="portal-fleet-remove"),
    path("portal/models/new", portal.model_new, name="portal-model-new"),
    path("portal/models/<str:slug>", portal.model_manage, name="portal-model"),
    path("portal/models/<str:slug>/edit", portal.model_edit, name="portal-model-edit"),
    path("portal/models/<str:slug>/registered", portal.model_registered, name="portal-model-registered"),
    path("portal/models/<str:slug>/terms-call", portal.terms_call, name="portal-terms-call"),
    path("portal/models/<str:slug>/versions/new", portal.version_new, name="portal-version-new"),
    path("portal/models/<str:slug>/versions/<int:version_id>", portal.version_page, name="portal-version"),
    path("portal/models/<str:slug>/versions/<int:version_id>/revoke-call", portal.revoke_call, name="portal-revoke-call"),
    path("", views.home, name="home"),
    path("models", views.home, name="catalog"),  # the catalog under its own name (a vendor slug "models" is shadowed)
    path("<str:vendor>/<str:model>/resolve/<str:revision>/<path:path>", hf.ResolveView.as_view(), name="hf-resolve"),
    path("<str:vendor>/<str:model>", views.model_page, name="model-page"),
    path("<str:vendor>", views.vendor_page, name="vendor-page"),
]
