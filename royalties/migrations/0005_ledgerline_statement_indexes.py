from django.db import migrations, models


class Migration(migrations.Migration):
    """The statement's indexes, in a migration of their own: PostgreSQL refuses CREATE INDEX in
    the transaction that updated the table's rows (0004's backfill leaves deferred FK checks)."""

    dependencies = [
        ("royalties", "0004_line_chain_order_and_balances"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='ledgerline',
            name='ledgerline_account_time_amt',
        ),
        migrations.AddIndex(
            model_name='ledgerline',
            index=models.Index(fields=['account', 'occurred_at'], include=('amount_wei', 'role', 'sold_model_id', 'model_id'), name='ledgerline_account_period'),
        ),
        migrations.AddIndex(
            model_name='ledgerline',
            index=models.Index(condition=models.Q(('sold_model_id', ''), _negated=True), fields=['sold_model_id', 'occurred_at'], include=('sold_version', 'role', 'amount_wei', 'address'), name='ledgerline_sold_model_time'),
        ),
    ]
