"""The license mirror: what the chain says each licensee holds, cached with its expiry."""

from django.db import models

from registry.models import TimeStamped


class License(TimeStamped):
    """A licence seen on chain for (model, licensee). `expires_at` null means perpetual.

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
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.CHAIN_READ)
    observed_block = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
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
