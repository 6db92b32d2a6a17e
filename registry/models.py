"""Chain-side state kept on the server: the transaction outbox and the relayer's nonce."""

from django.db import models
from django.db.models import F
from django.db.models.fields.json import KeyTransform

from .fields import WeiField


class TimeStamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ChainTransaction(TimeStamped):
    """One intended contract call, written in the same database transaction as the domain change.

    The relayer signs it with a nonce allocated under a row lock, stores the signed bytes before
    broadcasting (so a crash can only re-send the same transaction), and records the receipt.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        SIGNED = "signed", "signed, not yet confirmed"
        CONFIRMED = "confirmed", "confirmed"
        FAILED = "failed", "failed"

    idempotency_key = models.CharField(max_length=200, unique=True)
    function = models.CharField(max_length=64)
    args = models.JSONField(help_text="call arguments by name: hex for bytes, digit strings for integers")
    value_wei = WeiField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    from_address = models.CharField(max_length=42, blank=True)
    nonce = models.PositiveBigIntegerField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66, blank=True, db_index=True)
    raw_transaction = models.TextField(blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    gas_used = models.PositiveBigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    # who the gas is spent for (a vendor's address): the per-sponsor daily spending cap counts it
    sponsor = models.CharField(max_length=42, blank=True, db_index=True)
    fee_wei = WeiField(null=True, blank=True, help_text="gas used x effective gas price, once confirmed")
    sent_block = models.PositiveBigIntegerField(null=True, blank=True, help_text="head when last (re)signed and sent")
    replaced_hashes = models.JSONField(
        default=list, blank=True, help_text="earlier hashes of this nonce (fee bumps): any of them may be mined"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["from_address", "nonce"],
                condition=models.Q(nonce__isnull=False),
                name="chaintx_unique_sender_nonce",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="confirmed") | ~models.Q(block_number=None),
                name="chaintx_confirmed_has_block",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.function} [{self.status}] {self.tx_hash or self.idempotency_key}"


class RelayerNonce(TimeStamped):
    """The next nonce of a relayer address; locked (SELECT ... FOR UPDATE) while one is taken."""

    address = models.CharField(max_length=42, primary_key=True)
    next_nonce = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.address} next={self.next_nonce}"


class IndexerCursor(TimeStamped):
    """How far the event indexer has applied the registry's logs: a block and its hash."""

    contract = models.CharField(max_length=42, primary_key=True)
    block_number = models.BigIntegerField(default=-1)
    block_hash = models.CharField(max_length=66, blank=True)

    def __str__(self) -> str:
        return f"{self.contract} @ {self.block_number}"


class IndexedBlock(models.Model):
    """Hashes of recently indexed blocks: the highest one still canonical is the common ancestor
    to roll back to after a reorg."""

    contract = models.CharField(max_length=42)
    number = models.BigIntegerField()
    hash = models.CharField(max_length=66)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contract", "number"], name="indexedblock_unique_number")]
        indexes = [models.Index(fields=["contract", "-number"])]


class ChainEvent(TimeStamped):
    """One registry event, applied once: unique by (transaction hash, log index)."""

    contract = models.CharField(max_length=42)
    block_number = models.BigIntegerField(db_index=True)
    block_hash = models.CharField(max_length=66)
    block_timestamp = models.DateTimeField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    name = models.CharField(max_length=64, db_index=True)
    args = models.JSONField(help_text="decoded arguments: 0x-hex for bytes, digit strings for integers")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tx_hash", "log_index"], name="chainevent_unique_log")]
        indexes = [
            models.Index(fields=["contract", "block_number", "log_index"]),
            # events of one model by kind (statements, projections): ChainEvent(name, args->'modelId')
            models.Index(F("name"), KeyTransform("modelId", "args"), name="chainevent_name_model"),
        ]
        ordering = ["block_number", "log_index"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.block_number}:{self.log_index}"


class SkippedEvent(TimeStamped):
    """An event one projection could not apply (a poison event): recorded and skipped by that
    projection, so every other event (and every other projection) still counts."""

    event = models.ForeignKey(ChainEvent, on_delete=models.CASCADE, related_name="skips")
    projection = models.CharField(max_length=200)
    error = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "projection"], name="skippedevent_unique")]

    def __str__(self) -> str:
        return f"{self.projection} skipped {self.event}"


class CacheGeneration(models.Model):
    """One row: bumped by every change that may make a process-local cache wrong (registry/caching.py)."""

    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"cache generation {self.value}"
