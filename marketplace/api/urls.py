"""REST API routes under /api/v1/."""

from django.urls import path

from . import auth, catalog, chain, devices, provenance, purchases, receipts, royalties, tus, vendor

urlpatterns = [
    path("auth/nonce", auth.NonceView.as_view(), name="api-auth-nonce"),
    path("auth/siwe", auth.SiweView.as_view(), name="api-auth-siwe"),
    path("auth/tokens", auth.TokensView.as_view(), name="api-auth-tokens"),
    path("auth/tokens/<str:prefix>", auth.TokenView.as_view(), name="api-auth-token"),
    path("auth/wallets", auth.WalletsView.as_view(), name="api-auth-wallets"),
    path("auth/checksum/<str:address>", auth.ChecksumView.as_view(), name="api-auth-checksum"),
    path("devices", devices.DevicesView.as_view(), name="api-devices"),
    path("devices/challenge", devices.DeviceChallengeView.as_view(), name="api-device-challenge"),
    path("devices/token", devices.DeviceTokenView.as_view(), name="api-device-token"),
    path("devices/me", devices.DeviceMeView.as_view(), name="api-device-me"),
    path("devices/<str:address>", devices.DeviceView.as_view(), name="api-device"),
    path("devices/<str:address>/inventory", devices.DeviceInventoryView.as_view(), name="api-device-inventory"),
    path("models", catalog.ModelListView.as_view(), name="api-models"),
    path("models/<str:vendor>/<str:model>", catalog.ModelDetailView.as_view(), name="api-model-detail"),
    path(
        "models/<str:vendor>/<str:model>/versions/<int:number>/segments",
        catalog.VersionSegmentsView.as_view(),
        name="api-model-version-segments",
    ),
    path(
        "models/<str:vendor>/<str:model>/versions/<int:number>/model.sig",
        provenance.VersionSignatureBundleView.as_view(),
        name="api-model-version-signature-bundle",
    ),
    path("vendors/<str:vendor>/keys", vendor.VendorKeysView.as_view(), name="api-vendor-keys"),
    path("models/<str:vendor>/<str:model>/purchase", purchases.PurchaseTransactionView.as_view(), name="api-model-purchase"),
    path("models/<str:vendor>/<str:model>/royalties", purchases.RoyaltyPreviewView.as_view(), name="api-model-royalties"),
    path("purchases", purchases.PurchaseConfirmView.as_view(), name="api-purchases"),
    path("receipts/<str:receipt_id>", receipts.ReceiptView.as_view(), name="api-receipt"),
    path("royalties/statement", royalties.StatementView.as_view(), name="api-royalties-statement"),
    path("royalties/licenses", royalties.LicensesView.as_view(), name="api-royalties-licenses"),
    path("provenance/sha256/<str:sha256>", provenance.ProvenanceByHashView.as_view(), name="api-provenance-sha256"),
    path("eip712", provenance.Eip712TypesView.as_view(), name="api-eip712"),
    path("chain", chain.ChainInfoView.as_view(), name="api-chain"),
    path("chain/status", chain.ChainStatusView.as_view(), name="api-chain-status"),
    path("vendor/models", vendor.VendorModelsView.as_view(), name="api-vendor-models"),
    path("vendor/models/<str:slug>", vendor.VendorModelView.as_view(), name="api-vendor-model"),
    path("vendor/models/<str:slug>/receipts", receipts.VendorReceiptsView.as_view(), name="api-vendor-model-receipts"),
    path("vendor/models/<str:slug>/signature", vendor.VendorModelSignatureView.as_view(), name="api-vendor-model-signature"),
    path("vendor/models/<str:slug>/versions", vendor.VendorVersionsView.as_view(), name="api-vendor-versions"),
    path("vendor/models/<str:slug>/versions/<int:version_id>", vendor.VendorVersionView.as_view(), name="api-vendor-version"),
    path(
        "vendor/models/<str:slug>/versions/<int:version_id>/files/<path:path>",
        vendor.VendorVersionFileView.as_view(),
        name="api-vendor-version-file",
    ),
    path("vendor/models/<str:slug>/versions/<int:version_id>/uploads", tus.creation, name="tus-creation"),
    path("uploads/<uuid:upload_id>", tus.resource, name="tus-resource"),
    path(
        "vendor/models/<str:slug>/versions/<int:version_id>/finalize",
        vendor.VendorVersionFinalizeView.as_view(),
        name="api-vendor-version-finalize",
    ),
    path(
        "vendor/models/<str:slug>/versions/<int:version_id>/signature",
        vendor.VendorVersionSignatureView.as_view(),
        name="api-vendor-version-signature",
    ),
]
