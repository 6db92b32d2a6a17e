"""Public pages: the home page, a vendor's page, a model's page."""

from dataclasses import dataclass

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from royalties.selectors import format_eth

from . import selectors
from .cards import render_card
from .catalog_filters import CatalogFilterForm
from .errors import NotFound
from .models import Artifact, Model, Vendor
from .presenters import chain_context, model_lineage_root_first, model_lineage_tree, version_chain_checks

CATALOG_PAGE_SIZE = 24


@dataclass(frozen=True)
class CatalogCard:
    """One model as a catalog card shows it: facts from the mirror only, never a chain call."""

    model: Model
    version_number: int | None
    formats: list[str]
    total_size: int | None
    parameters: str
    price: str
    licence: str
    verified: bool


def home(request):
    """The catalog (`/` and `/models`): search, filters, sorting and pages over the selector and
    filter names of `GET /api/v1/models`. A plain GET form: works without JavaScript."""
    form = CatalogFilterForm(request.GET or None, facets=selectors.catalog_facets())
    if form.is_bound:
        form.is_valid()  # errors are shown beside the results of the valid filters
    paginator = Paginator(selectors.model_search(**form.search_kwargs()), CATALOG_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    models = list(page.object_list)
    latest = selectors.catalog_latest_versions(models=models)
    cards = [_catalog_card(m, latest.get(m.pk)) for m in models]
    filtered = any(v for k, v in request.GET.items() if k not in ("page", "ordering"))
    return render(request, "marketplace/home.html", {"form": form, "page": page, "cards": cards, "filtered": filtered})


def _catalog_card(model: Model, version) -> CatalogCard:
    files = [a for a in version.artifacts.all() if selectors.artifact_is_signed(a, version)] if version else []
    return CatalogCard(
        model=model,
        version_number=model.latest_version_number,
        formats=[f for f in model.file_formats.split(",") if f],
        total_size=sum(a.size for a in files) if version else None,
        parameters=human_count(model.parameter_count),
        price=format_eth(model.price_wei),
        licence=licence_length(model.license_duration),
        # as the model page decides it, from what the mirror holds: signed by the vendor, not revoked
        verified=bool(version) and version.signer == model.vendor.address and not version.revoked,
    )


def human_count(n: int | None) -> str:
    """1100000000 -> "1.1B", 135000000 -> "135M"; "" when unknown."""
    if n is None:
        return ""
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= size:
            text = f"{n / size:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(n)


def licence_length(seconds: int) -> str:
    """How long a licence lasts: "Perpetual", "30 days", "12 hours"."""
    if seconds == 0:
        return "Perpetual"
    if seconds < 2 * 86400:
        hours = max(1, round(seconds / 3600))
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{round(seconds / 86400)} days"


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
    # the download example names the weights of the newest version hosted here (not an adopted one)
    hosted = next((e for e in entries if not e["version"].adopted and e["files"]), None)
    example = download_example_file(hosted["files"]) if hosted else None
    # `main` is the newest live version: when that one is adopted (no files here), name the commit
    example_revision = "main" if hosted is None or hosted is entries[0] else hosted["version"].commit_sha
    return render(request, "marketplace/model.html", {
        "model": model_obj, "versions": entries, "card_html": render_card(model_obj.card), "lineage": model_lineage_root_first(model=model_obj),
        "lineage_tree": model_lineage_tree(model=model_obj),
        "price_eth": format_eth(model_obj.price_wei), "duration_days": model_obj.license_duration // 86400,
        "upstream_percent": model_obj.upstream_bps / 100,
        "download_file": example.path if example else "", "download_revision": example_revision,
        # the Buy panel (_buy.html): the revision to download, and the wallets this session already linked
        "buy_revision": hosted["version"].commit_sha if hosted else "main",
        "buy_wallets": list(selectors.wallet_addresses(user=request.user)) if request.user.is_authenticated else [],
        **chain_context(),
    })


def download_example_file(files: list[Artifact]) -> Artifact:
    """The file the model page's curl example downloads: the model itself, i.e. the largest file
    that is not a README or other document (the first by path among equals); else the largest."""
    documents = (".md", ".txt", ".json", ".yaml", ".yml")
    weights = [a for a in files if not a.path.rsplit("/", 1)[-1].lower().endswith(documents)]
    return max(weights or files, key=lambda a: a.size)
