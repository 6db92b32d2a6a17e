"""Public pages: the home page, a vendor's page, a model's page."""

from django.http import Http404
from django.shortcuts import get_object_or_404, render

from royalties.selectors import format_eth

from . import selectors
from .cards import render_card
from .errors import NotFound
from .models import Model, Vendor
from .presenters import chain_context, model_lineage_root_first, version_chain_checks


def home(request):
    return render(request, "marketplace/home.html", {"models": selectors.model_list_public()[:50]})


def vendor_page(request, vendor):
    vendor_obj = get_object_or_404(Vendor, slug=vendor)
    models = Model.objects.filter(vendor=vendor_obj, status=Model.Status.LIVE).order_by("slug")
    return render(request, "marketplace/vendor.html", {"vendor": vendor_obj, "models": models})


def model_page(request, vendor, model):
    try:
        model_obj = selectors.model_get_by_repo(vendor_slug=vendor, model_slug=model)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    versions = list(selectors.live_versions(model=model_obj).prefetch_related("artifacts"))
    checks = version_chain_checks(model=model_obj, versions=versions)
    entries = [
        {
            "version": v,
            "files": selectors.version_files(version=v),  # only what the signed manifest names
            "check": checks.get(v.pk),
            "verified": bool(checks.get(v.pk)) and checks[v.pk]["matches_chain"] and not checks[v.pk]["revoked"]
            and v.signer == model_obj.vendor.address,
        }
        for v in versions
    ]
    # the download example names a file of the newest version hosted here (not an adopted one)
    hosted = next((e for e in entries if not e["version"].adopted and e["files"]), None)
    first = hosted["files"][0] if hosted else None
    return render(request, "marketplace/model.html", {
        "model": model_obj, "versions": entries, "card_html": render_card(model_obj.card), "lineage": model_lineage_root_first(model=model_obj),
        "price_eth": format_eth(model_obj.price_wei), "duration_days": model_obj.license_duration // 86400,
        "upstream_percent": model_obj.upstream_bps / 100, "first_file": first.path if first else "<file>",
        **chain_context(),
    })
