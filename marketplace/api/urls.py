"""REST API routes under /api/v1/."""

from django.urls import path

from . import auth, royalties, tus, views

urlpatterns = [
    path("auth/nonce", auth.NonceView.as_view(), name="api-auth-nonce"),
    path("auth/siwe", auth.SiweView.as_view(), name="api-auth-siwe"),
    path("auth/tokens", auth.TokensView.as_view(), name="api-auth-tokens"),
    path("auth/tokens/<str:prefix>", auth.TokenView.as_view(), name="api-auth-token"),
    path("auth/wallets", auth.WalletsView.as_view(), name="api-auth-wallets"),
    path("auth/checksum/<str:address>", auth.ChecksumView.as_view(), name="api-auth-checksum"),
    path("models", views.ModelListView.as_view(), name="api-models"),
    path("models/<str:vendor>/<str:model>", views.ModelDetailView.as_view(), name="api-model-detail"),
    path("models/<str:vendor>/<str:model>/purchase", views.PurchaseTransactionView.as_view(), name="api-model-purchase"),
    path("models/<str:vendor>/<str:model>/royalties", views.RoyaltyPreviewView.as_view(), name="api-model-royalties"),
    path("purchases", views.PurchaseConfirmView.as_view(), name="api-purchases"),
    path("royalties/statement", royalties.StatementView.as_view(), name="api-royalties-statement"),
    path("royalties/licenses", royalties.LicensesView.as_view(), name="api-royalties-licenses"),
    path("provenance/sha256/<str:sha256>", views.ProvenanceByHashView.as_view(), name="api-provenance-sha256"),
    path("eip712", views.Eip712TypesView.as_view(), name="api-eip712"),
    path("chain", views.ChainInfoView.as_view(), name="api-chain"),
    path("chain/status", views.ChainStatusView.as_view(), name="api-chain-status"),
    path("vendor/models", views.VendorModelsView.as_view(), name="api-vendor-models"),
    path("vendor/models/<str:slug>", views.VendorModelView.as_view(), name="api-vendor-model"),
    path("vendor/models/<str:slug>/signature", views.VendorModelSignatureView.as_view(), name="api-vendor-model-signature"),
    path("vendor/models/<str:slug>/versions", views.VendorVersionsView.as_view(), name="api-vendor-versions"),
    path("vendor/models/<str:slug>/versions/<int:version_id>", views.VendorVersionView.as_view(), name="api-vendor-version"),
    path(
        "vendor/models/<str:slug>/versions/<int:version_id>/files/<path:path>",
        views.VendorVersionFileView.as_view(),
        name="api-vendor-version-file",
    ),
    path("vendor/models/<str:slug>/versions/<int:version_id>/uploads", tus.creation, name="tus-creation"),
    path("uploads/<uuid:upload_id>", tus.resource, name="tus-resource"),
    path(
        "vendor/models/<str:slug>/versions/<int:version_id>/finalize",
        views.VendorVersionFinalizeView.as_view(),
        name="api-vendor-version-finalize",
    ),
    path(
        "vendor/models/<str:slug>/versions/<int:version_id>/signature",
        views.VendorVersionSignatureView.as_view(),
        name="api-vendor-version-signature",
    ),
]
