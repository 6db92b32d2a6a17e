"""The licence admin: an operator's edit or deletion of a mirrored licence stops granting downloads
at once, in every process (it bumps the hot cache generation, registry/caching.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace import services
from marketplace.errors import Forbidden
from royalties.models import License

pytestmark = pytest.mark.django_db


def form(licence: License, **changes) -> dict:
    expires_at = changes.get("expires_at", licence.expires_at)
    data = {
        "model_id": licence.model_id,
        "licensee": licence.licensee,
        "expires_at_0": expires_at.strftime("%Y-%m-%d") if expires_at else "",
        "expires_at_1": expires_at.strftime("%H:%M:%S") if expires_at else "",
        "seats": str(changes.get("seats", licence.seats)),
        "source": licence.source,
        "observed_block": "",
    }
    if changes.get("perpetual", licence.perpetual):
        data["perpetual"] = "on"
    return data


def test_an_admin_edit_or_deletion_of_a_licence_stops_it_granting_at_once(chain, live_version, make_party, client, django_user_model):
    buyer = make_party("buyer", chain.keys[2])
    # mirrored without a purchase on chain (a wrong row an operator corrects): only the mirror grants
    licence = License.objects.create(
        model_id=live_version.model.chain_model_id.lower(), licensee=buyer.address, perpetual=True, source=License.Source.EVENT
    )
    client.force_login(django_user_model.objects.create_superuser("operator", password="unused-in-this-test"))
    assert services.download_authorize(user=buyer.user, version=live_version).source == "mirror"  # now cached

    url = f"/admin/royalties/license/{licence.pk}/change/"
    shortened = client.post(url, form(licence, perpetual=False, expires_at=timezone.now() - timedelta(hours=1)))
    assert shortened.status_code == 302, shortened.content.decode()[:2000]
    licence.refresh_from_db()
    assert not licence.perpetual and licence.expires_at < timezone.now()
    with pytest.raises(Forbidden) as refused:
        services.download_authorize(user=buyer.user, version=live_version)
    assert refused.value.code == "GatedRepo"

    assert client.post(url, form(licence, perpetual=True, expires_at=None)).status_code == 302
    assert services.download_authorize(user=buyer.user, version=live_version).source == "mirror"  # cached again
    deleted = client.post(f"/admin/royalties/license/{licence.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not License.objects.exists()
    with pytest.raises(Forbidden):
        services.download_authorize(user=buyer.user, version=live_version)
