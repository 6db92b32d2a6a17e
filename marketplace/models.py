"""Marketplace data: accounts (wallets, API tokens), vendors, models, versions, artifacts, downloads."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from registry.fields import WeiField
from registry.models import ChainTransaction, TimeStamped


class Wallet(TimeStamped):
    """An Ethereum address a user proved to control (signature checked when linked)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wallets")
    address = models.CharField(max_length=42, unique=True, help_text="checksummed")

    def __str__(self) -> str:
        return self.address


class ApiToken(TimeStamped):
    """A bearer token for the API and Hugging Face clients. Only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True, help_text="shown to the owner to tell tokens apart")
    key_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="created_tokens",
        help_text="the token that authenticated this one's creation: this one never outlives it, and is revoked with it",
    )

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class SiweNonce(TimeStamped):
    """A Sign-In with Ethereum nonce: issued by the server, usable once, briefly."""

    nonce = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.nonce


class Vendor(TimeStamped):
    """A publisher: its slug names its repos (`<vendor>/<model>`); `address` signs its versions."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vendor")
    slug = models.SlugField(max_length=64, unique=True)
    display_name = models.CharField(max_length=200, blank=True)
    address = models.CharField(max_length=42, unique=True, help_text="checksummed signing wallet")

    def __str__(self) -> str:
        return self.slug


class VendorSigningKey(TimeStamped):
    """A vendor's NIST P-256 public key for OpenSSF Model Signing bundles (hallmark/oms.py).

    Registered by the vendor (`POST /api/v1/vendors/<vendor>/keys`) and public. The newest key
    not retired is the current one: a version hashed while it is current names its `sha256` in
    its signed metadata (`signing_key`), so older versions keep naming older keys, which stay
    listed."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="signing_keys")
    algorithm = models.CharField(max_length=32, default="ecdsa-p256-sha256")
    public_key_pem = models.TextField(help_text="SubjectPublicKeyInfo PEM")
    sha256 = models.CharField(max_length=64, help_text="hex SHA-256 of the DER SubjectPublicKeyInfo")
    retired_at = models.DateTimeField(null=True, blank=True, help_text="set when a newer key replaced it")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vendor", "sha256"], name="signing_key_unique_vendor_sha256"),
            models.UniqueConstraint(
                fields=["vendor"], condition=Q(retired_at__isnull=True), name="signing_key_one_current_per_vendor"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} {self.sha256[:16]}…"


class Model(TimeStamped):
    """A vendor's model: terms and lineage, registered on chain under `chain_model_id`.

    States (`status`), and the one service that makes each change (marketplace/services/):

        model_create          model_submit_signature             model_mark_live
        ----------> awaiting_signature ----------> pending_chain ------------------> live
                         |                          |    ^                            |
                         |                          |    +----------------------------+
                         |   model_mark_failed      |       model_mark_pending_again
                         |   (relay reverted)       v       (a reorg removed ModelCreated)
                         |                        failed
                         |                          |
                         +--------------------------+---> live: model_mark_live
                                                           (the vendor's own createModel)

    `model_mark_live` is called by the relayer (`model_anchor`), the indexer (`ModelCreated`,
    marketplace/projections.py) and the portal's receipt check (`model_register_from_tx`):
    whichever comes first; a model already live stays as it is. Terms (`price_wei`,
    `license_duration`, `listed`) follow `TermsChanged` in any state. The catalog columns
    (`latest_version_number` ...) follow the versions (`model_catalog_refresh`).
    """

    class Status(models.TextChoices):
        AWAITING_SIGNATURE = "awaiting_signature", "waiting for the vendor's signature"
        PENDING_CHAIN = "pending_chain", "waiting for the chain"
        LIVE = "live", "registered on chain"
        FAILED = "failed", "failed"

    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="models")
    slug = models.SlugField(max_length=96)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    card = models.TextField(blank=True, help_text="model card: Markdown with optional YAML front matter")
    card_data = models.JSONField(default=dict, blank=True, help_text="front matter: license, base_model, tags, ...")
    chain_model_id = models.CharField(max_length=66, unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    upstream_bps = models.PositiveIntegerField(default=0)
    price_wei = WeiField(default=0)
    license_duration = models.PositiveBigIntegerField(default=0, help_text="seconds; 0 = perpetual")
    listed = models.BooleanField(default=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.AWAITING_SIGNATURE)
    typed_data = models.JSONField(null=True, blank=True, help_text="the CreateModel message to sign")
    signature = models.CharField(max_length=140, blank=True)
    create_transaction = models.ForeignKey(ChainTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    # catalog facts of the latest live version, kept here so search needs no join
    latest_version_number = models.PositiveIntegerField(null=True, blank=True)
    architecture = models.CharField(max_length=64, blank=True, db_index=True)
    quantization = models.CharField(max_length=64, blank=True, db_index=True)
    file_formats = models.CharField(max_length=64, blank=True, help_text="',gguf,onnx,' for exact matching")
    parameter_count = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["status", "listed", "-created_at"], name="model_catalog_recent")]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "slug"], name="model_unique_vendor_slug"),
            models.CheckConstraint(condition=Q(upstream_bps__lte=10_000), name="model_upstream_bps_max"),
            models.CheckConstraint(condition=Q(price_wei__gte=0), name="model_price_nonnegative"),
        ]

    @property
    def repo_id(self) -> str:
        return f"{self.vendor.slug}/{self.slug}"

    def __str__(self) -> str:
        return self.repo_id


class Version(TimeStamped):
    """One published (or in-progress) version: files, manifest, signature, chain anchor.

    States (`status`), and the one service that makes each change (marketplace/services/):

        version_create   version_finalize   version_hash_and_inspect
        -----> draft ------------> hashing ------------------> awaiting_signature
                                      |                               |
                version_mark_rejected |        version_submit_signature (number taken,
                (a bad file; runs     v         outbox row queued)   |
                 that kept dying)  rejected                           v
                                                  +----------- pending_chain <---------+
                                                  |                   |                |
                              version_mark_failed |  version_mark_live|  version_mark_ |
                              (relay reverted, or |  (relayer receipt |  pending_again |
                               chain_mismatch:    |   or indexer,     |  (a reorg      |
                               the number went    |   first wins)     v   removed it)  |
                               elsewhere)         +--> failed       live --------------+
                                                         ^            |
                                                         +------------+ version_mark_failed
                                                         (the chain holds another digest
                                                          under this number: chain_mismatch)

        version_adopt (a VersionPublished this marketplace never sent) ---> live, adopted=True
        version_adoption_undo (a reorg removed that event) ---> the row is deleted

    A failed version has no number (the chain's version of it is adopted). Revocation is a
    flag beside the state, set from the chain only: `version_revoke` builds the vendor's wallet
    call, `version_mark_revoked` / `version_mark_unrevoked` follow `VersionRevoked` and its
    reorg. Every change from pending_chain on is in services/states.py and owns its side effects
    (cache generation, catalog refresh, re-queued anchor task).
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "draft: uploading files"
        HASHING = "hashing", "hashing and inspecting"
        AWAITING_SIGNATURE = "awaiting_signature", "waiting for the vendor's signature"
        PENDING_CHAIN = "pending_chain", "waiting for the chain"
        LIVE = "live", "live"
        REJECTED = "rejected", "rejected (see error)"
        FAILED = "failed", "failed on chain (see error)"

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(null=True, blank=True, help_text="the on-chain version number")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.DRAFT, db_index=True)
    root_digest = models.CharField(max_length=64, blank=True, db_index=True)
    metadata_digest = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    typed_data = models.JSONField(null=True, blank=True, help_text="the PublishVersion message to sign")
    signature = models.CharField(max_length=140, blank=True)
    signer = models.CharField(max_length=42, blank=True)
    publish_transaction = models.ForeignKey(
        ChainTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    published_block = models.PositiveBigIntegerField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    revoked_reason = models.CharField(max_length=66, blank=True)
    declared_files = models.JSONField(
        null=True, blank=True, help_text="digests the vendor declared before uploading: {path: sha256}"
    )
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    hash_attempts = models.PositiveSmallIntegerField(
        default=0, help_text="hashing/inspection runs started; past INSPECTION_MAX_ATTEMPTS the version is rejected"
    )
    adopted = models.BooleanField(
        default=False, help_text="published on chain without this marketplace (no files hosted here)"
    )
    oms_bundle = models.JSONField(
        null=True, blank=True,
        help_text="the vendor's OpenSSF Model Signing bundle (served as model.sig), checked against the manifest and key",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "number"], condition=Q(number__isnull=False), name="version_unique_model_number"
            ),
            models.CheckConstraint(
                condition=~Q(status="live") | (Q(number__isnull=False) & ~Q(root_digest="")),
                name="version_live_is_anchored",
            ),
        ]

    @property
    def commit_sha(self) -> str:
        """The Hugging Face commit id: the first 40 hex characters of the root digest."""
        return self.root_digest[:40]

    def __str__(self) -> str:
        return f"{self.model} v{self.number or '?'} [{self.status}]"


class Artifact(TimeStamped):
    """One file of a version, as stored: relative path, size, SHA-256, segment digests, inspection facts."""

    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=1024)
    storage_name = models.CharField(max_length=1024)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    file_format = models.CharField(max_length=32, blank=True)
    inspection = models.JSONField(null=True, blank=True)
    segment_digests = models.JSONField(
        default=list, blank=True,
        help_text="SHA-256 (hex) of each segment of the file (the size in its version's metadata `segments`); "
                  "empty for a version hashed before segments existed",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="artifact_unique_version_path")]

    def __str__(self) -> str:
        return f"{self.version}:{self.path}"


class Upload(TimeStamped):
    """A resumable (tus 1.0) upload of one file into a draft version.

    The bytes go to `part_name` under MEDIA_ROOT; `offset` is committed only after the bytes it
    counts are on disk, so a crash mid-chunk leaves an offset the client can resume from.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="uploads")
    path = models.CharField(max_length=1024)
    length = models.PositiveBigIntegerField()
    offset = models.PositiveBigIntegerField(default=0)
    part_name = models.CharField(max_length=255)
    metadata = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    artifact = models.OneToOneField(Artifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="upload")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(offset__lte=F("length")), name="upload_offset_within_length"),
            models.UniqueConstraint(
                fields=["version", "path"], condition=Q(completed_at__isnull=True), name="upload_one_open_per_path"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.path} {self.offset}/{self.length}"


class Download(TimeStamped):
    """Every download attempt, granted or refused: who, what, under which licence, bytes."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL)
    device = models.ForeignKey(
        "fleet.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="downloads",
        help_text="the edge device whose token asked (fleet/): null for any other request",
    )
    wallet = models.CharField(max_length=42, blank=True)
    version = models.ForeignKey(Version, null=True, blank=True, on_delete=models.SET_NULL)
    artifact = models.ForeignKey(Artifact, null=True, blank=True, on_delete=models.SET_NULL)
    repo_id = models.CharField(max_length=200)
    revision = models.CharField(max_length=200)
    path = models.CharField(max_length=1024)
    method = models.CharField(max_length=8)
    status_code = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    license_source = models.CharField(max_length=16, blank=True)
    bytes_sent = models.PositiveBigIntegerField(default=0)
    range_start = models.PositiveBigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}/{self.path} {self.status_code}"


class ReceiptBatch(TimeStamped):
    """Receipts closed together under one Merkle root, anchored on chain by `anchorReceipts`
    through the outbox (marketplace/services/receipts.py).

    There is no row for the batch being filled: the receipts not yet in a batch (`batch` null)
    are it, so a download inserts one row and locks nothing. `closed`: root computed, not yet
    queued; `anchoring`: `anchorReceipts` is in the outbox (`transaction`); `anchored`: the
    chain's `ReceiptsAnchored` gave `batch_id`, in `block_number`."""

    class State(models.TextChoices):
        CLOSED = "closed"
        ANCHORING = "anchoring"
        ANCHORED = "anchored"

    state = models.CharField(max_length=16, choices=State.choices, default=State.CLOSED, db_index=True)
    root = models.CharField(max_length=66, help_text="the Merkle root, 0x-hex (OpenZeppelin StandardMerkleTree)")
    count = models.PositiveIntegerField()
    attempts = models.PositiveIntegerField(default=0, help_text="outbox rows queued for it (a failed one is replaced)")
    transaction = models.ForeignKey(ChainTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    batch_id = models.PositiveBigIntegerField(null=True, blank=True, unique=True, help_text="the contract's batch id")
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    anchored_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"receipts batch #{self.pk} ({self.count}, {self.state})"


class Receipt(TimeStamped):
    """One granted GET of a file, in the fields (and 0x-hex forms) of docs/recorder.md: the leaf
    of its batch's Merkle tree. `leaf` is computed when the batch closes, off the download path.
    Every index costs each granted GET (bench/receipts.py): none on `created_at` (`served_at` is
    the receipt's time), and the batch's only on rows in one (a new receipt has none)."""

    created_at = models.DateTimeField(auto_now_add=True)
    receipt_id = models.CharField(max_length=66, unique=True)
    model_id = models.CharField(max_length=66)  # queried through marketplace_receipt_model_at (model_id, served_at)
    version = models.PositiveIntegerField()
    root_digest = models.CharField(max_length=66)
    file_sha256 = models.CharField(max_length=66)
    licensee = models.CharField(max_length=42)
    device = models.CharField(max_length=42)
    range_start = models.PositiveBigIntegerField()
    range_end = models.PositiveBigIntegerField(help_text="exclusive")
    served_at = models.PositiveBigIntegerField(help_text="unix seconds")
    download = models.ForeignKey(Download, null=True, blank=True, on_delete=models.SET_NULL, related_name="receipts")
    batch = models.ForeignKey(
        ReceiptBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="receipts", db_index=False
    )  # indexed where set only: a receipt is inserted without one (receipt_batched below)
    leaf = models.CharField(max_length=66, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["model_id", "served_at"], name="marketplace_receipt_model_at"),
            models.Index(fields=["served_at"], name="marketplace_receipt_unbatched", condition=Q(batch__isnull=True)),
            models.Index(fields=["batch"], name="receipt_batched", condition=Q(batch__isnull=False)),
        ]

    def __str__(self) -> str:
        return self.receipt_id
