"""The license mirror: what the chain says each licensee holds, cached with its expiry."""

from django.db import models

from registry.fields import WeiField
from registry.models import TimeStamped


class License(TimeStamped):
    """A licence seen on chain for (model, licensee): `seats` seats until `expires_at` (null means
    perpetual).

    Written from chain reads (and, later, from indexed `LicensePurchased` events); a positive
    answer is trusted only until `expires_at`.
    """

    class Source(models.TextChoices):
        CHAIN_READ = "chain_read", "read from the contract"
        EVENT = "event", "indexed event"

    model_id = models.CharField(max_length=66, help_text="the on-chain bytes32 model id, 0x-hex")
    licensee = models.CharField(max_length=42, help_text="checksummed wallet address")
    expires_at = models.DateTimeField(null=True, blank=True)
    perpetual = models.BooleanField(default=False)
    seats = models.PositiveIntegerField(
        default=1, help_text="the devices the licence covers (the contract's seats; every seat shares the expiry)"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CHAIN_READ)
    observed_block = models.PositiveBigIntegerField(null=True, blank=True)
    observed_block_hash = models.CharField(
        max_length=66, blank=True, default="",
        help_text="the hash of observed_block when the row was written: a row written ahead of the indexer (a "
        "contract read, a purchase receipt) is forgotten when the indexer finds that block replaced",
    )

    class Meta:
        indexes = [
            models.Index(fields=["licensee"], name="license_licensee"),  # a wallet's licences
            models.Index(fields=["observed_block"], name="license_observed_block"),  # the indexer's check of a range
        ]
        constraints = [
            models.UniqueConstraint(fields=["model_id", "licensee"], name="license_unique_model_licensee"),
            models.CheckConstraint(
                condition=models.Q(perpetual=True, expires_at__isnull=True)
                | models.Q(perpetual=False, expires_at__isnull=False),
                name="license_perpetual_xor_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.licensee} on {self.model_id[:10]}… until {'forever' if self.perpetual else self.expires_at}"


class LedgerEntry(TimeStamped):
    """One money movement seen on chain, as a balanced set of lines (they sum to zero).

    Written only by the indexer's projection from registry events, so the whole ledger can be
    dropped and rebuilt from the chain (`manage.py rebuild_ledger`) with the same result.
    Accounts: `wallet:<address>` (money outside the contract) and `credit:<address>` (credited in
    the contract, withdrawable: its balance is `creditOf`).
    """

    class Kind(models.TextChoices):
        PURCHASE = "purchase", "licence purchase"
        WITHDRAWAL = "withdrawal", "withdrawal"
        TERMS = "terms", "terms changed (no money moves)"
        PLATFORM_FEE = "platform_fee", "platform fee changed (no money moves)"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField(help_text="the log index of the event that opens the entry")
    block_number = models.BigIntegerField()
    occurred_at = models.DateTimeField(db_index=True)
    model_id = models.CharField(max_length=66, blank=True, db_index=True)
    licensee = models.CharField(max_length=42, blank=True, db_index=True)
    payer = models.CharField(max_length=42, blank=True)
    price_wei = WeiField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    perpetual = models.BooleanField(default=False)
    memo = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tx_hash", "log_index"], name="ledgerentry_unique_event")]
        indexes = [
            models.Index(fields=["licensee", "-occurred_at"], name="ledgerentry_licensee_recent"),
            # a vendor's sales in a period (bench/ledger_scale.py)
            models.Index(fields=["model_id", "occurred_at"], condition=models.Q(kind="purchase"), name="ledgerentry_sale_model_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.tx_hash[:10]}…:{self.log_index}"


class LedgerLine(models.Model):
    """One side of an entry: a signed amount of wei on an account."""

    class Role(models.TextChoices):
        PAYER = "payer", "payment out of the payer's wallet"
        VENDOR = "vendor", "the bought model's vendor"
        UPSTREAM = "upstream", "an ancestor model's vendor"
        PLATFORM = "platform", "platform fee"
        OVERPAYMENT = "overpayment", "overpayment credited back to the payer"
        WITHDRAWN = "withdrawn", "credit withdrawn"
        RECEIVED = "received", "withdrawal received in the wallet"

    entry = models.ForeignKey(LedgerEntry, on_delete=models.CASCADE, related_name="lines")
    account = models.CharField(max_length=50, help_text="wallet:<address> or credit:<address>")
    address = models.CharField(max_length=42)
    role = models.CharField(max_length=16, choices=Role.choices)
    model_id = models.CharField(max_length=66, blank=True, help_text="the model whose position earned it")
    amount_wei = WeiField(help_text="positive: into the account; negative: out of it")
    occurred_at = models.DateTimeField()
    log_index = models.PositiveIntegerField(null=True, blank=True)
    # copied from the entry, so that a statement reads lines without joining their entries
    block_number = models.BigIntegerField(null=True, blank=True)
    sold_model_id = models.CharField(max_length=66, blank=True, help_text="the model bought, for purchase lines")
    sold_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="the version of the model bought that was the latest published at the purchase's block"
    )
    balance_after_wei = WeiField(
        null=True, blank=True, help_text="the account's balance after this line, in chain order (block, log, line)"
    )

    class Meta:
        indexes = [
            models.Index(fields=["address", "occurred_at"], name="ledgerline_address_time"),
            # a period's lines and totals, and the balance before a date: the last line before it
            # (PostgreSQL: index-only scans, the columns a statement sums are in the index)
            models.Index(
                fields=["account", "occurred_at"], include=["amount_wei", "role", "sold_model_id", "model_id"],
                name="ledgerline_account_period",
            ),
            # a vendor's sales in a period: the lines of purchases of its models
            models.Index(
                fields=["sold_model_id", "occurred_at"], include=["sold_version", "role", "amount_wei", "address"],
                condition=~models.Q(sold_model_id=""), name="ledgerline_sold_model_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.amount_wei:+d}"


class ReconciliationAlert(TimeStamped):
    """A payee whose ledger balance differs from `creditOf` on chain at the same block."""

    payee = models.CharField(max_length=42, db_index=True)
    block_number = models.BigIntegerField()
    ledger_balance_wei = WeiField()
    chain_balance_wei = WeiField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    @property
    def drift_wei(self) -> int:
        return int(self.chain_balance_wei) - int(self.ledger_balance_wei)

    def __str__(self) -> str:
        return f"{self.payee} drift {self.drift_wei} at block {self.block_number}"
