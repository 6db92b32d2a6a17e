"""A mirrored licence remembers the hash of the block it was seen at, so that a row written ahead
of the indexer (a contract read, a purchase receipt) can be forgotten when the indexer reaches
that block and finds it replaced by a reorg deeper than CONFIRMATIONS. Rows written before this
have no hash: the indexer forgets those it has not passed yet (the next check reads the chain).

Not atomic, the index built concurrently on PostgreSQL: every licence check reads this table, and
the column's brief lock must not be held through an index build."""

from django.db import migrations, models

from registry.migration_operations import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("royalties", "0006_license_seats")]

    operations = [
        migrations.AddField(
            model_name="license",
            name="observed_block_hash",
            field=models.CharField(
                blank=True, default="", max_length=66,
                help_text="the hash of observed_block when the row was written: a row written ahead of the indexer (a "
                "contract read, a purchase receipt) is forgotten when the indexer finds that block replaced",
            ),
        ),
        AddIndexOnline(
            model_name="license",
            index=models.Index(fields=["observed_block"], name="license_observed_block"),
        ),
    ]
