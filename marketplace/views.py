"""Public pages: the home page, a vendor's page, a model's page."""

from django.http import Http404
from django.shortcuts import get_object_or_404, render

from . import selectors
from .errors import NotFound
from .models import Model, Vendor


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
    versions = selectors.live_versions(model=model_obj).prefetch_related("artifacts")
    return render(request, "marketplace/model.html", {"model": model_obj, "versions": versions})
