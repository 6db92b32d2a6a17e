from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0006_hostile_input'),
    ]

    operations = [
        migrations.AddField(
            model_name='apitoken',
            name='created_by',
            field=models.ForeignKey(blank=True, help_text="the token that authenticated this one's creation: this one never outlives it, and is revoked with it", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='created_tokens', to='marketplace.apitoken'),
        ),
    ]
