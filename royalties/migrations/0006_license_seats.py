"""Licence seats (issue 16): every licence mirrored before seats existed covers one device."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("royalties", "0005_ledgerline_statement_indexes")]

    operations = [
        migrations.AddField(
            model_name="license",
            name="seats",
            field=models.PositiveIntegerField(
                default=1,
                help_text="the devices the licence covers (the contract's seats; every seat shares the expiry)",
            ),
        ),
    ]
