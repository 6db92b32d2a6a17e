"""The vendor portal (/portal/...): thin views over the same services and selectors as the API
(rules live in services: a wallet call to revoke, to register, to change terms, is built there).

Every object is looked up through the signed-in user (a vendor sees and changes only their own
models and drafts: anything else is a 404). The server never holds a key: transactions and
signatures are made in the vendor's own wallet by the page's scripts (static/marketplace/js), and
the vendor's OMS signing key (P-256, for `model.sig`) is made and kept in the browser (oms.js)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from fleet import selectors as fleet_selectors
from fleet import services as fleet_services
from hallmark.manifest import TOOL_STATE_FOLDERS
from registry import chain
from registry.selectors import relayer_funding
from royalties.selectors import format_eth, licenses_held, purchase_history, statement_build, statement_daily_sales

from . import receipt_selectors, selectors, services
from .cards import render_card
from .errors import MarketplaceError, NotFound
from .forms import ModelCreateForm, ModelEditForm, SignupForm, TermsFields, VendorForm
from .models import ApiToken, Model, Version
from .presenters import chain_context, royalty_credits_withdrawable


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to Hallmark. Link your wallet to publish.")
        return redirect("portal-wallet")
    return render(request, "marketplace/portal/signup.html", {"form": form})


def _vendor_or_none(user):
    return getattr(user, "vendor", None)


def _own_model(request, slug: str) -> Model:
    try:
        return selectors.model_get_owned(user=request.user, slug=slug)
    except NotFound as exc:  # anyone else's model is not there at all
        raise Http404(exc.message) from exc


def _own_version(request, slug: str, version_id: int) -> Version:
    try:
        return selectors.version_get_owned(user=request.user, slug=slug, version_id=version_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@login_required
def dashboard(request):
    vendor = _vendor_or_none(request.user)
    wallets = list(selectors.wallet_addresses(user=request.user))
    form = VendorForm(request.POST or None, wallets=wallets)
    if request.method == "POST" and vendor is None and form.is_valid():
        try:
            services.vendor_register(
                user=request.user, slug=form.cleaned_data["slug"], address=form.cleaned_data["address"],
                display_name=form.cleaned_data["display_name"],
            )
        except MarketplaceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "You are a vendor now: create your first model.")
            return redirect("portal-home")
    models = Model.objects.filter(vendor__user=request.user).order_by("slug") if vendor else []
    return render(request, "marketplace/portal/dashboard.html", {"vendor": vendor, "wallets": wallets, "form": form, "models": models})


@login_required
def wallet(request):
    wallets = [{"address": address} for address in selectors.wallet_addresses(user=request.user)]
    return render(request, "marketplace/portal/wallet.html", {"wallets": wallets, **chain_context()})


@login_required
def signing_key_page(request):
    """The vendor's OpenSSF Model Signing key: made, kept, exported and imported in the browser
    (static/marketplace/js/signing-key.js), its public key registered through the API."""
    vendor = _vendor_or_none(request.user)
    if vendor is None:
        messages.info(request, "Register as a vendor first.")
        return redirect("portal-home")
    keys = vendor.signing_keys.order_by("-created_at", "-pk")
    return render(request, "marketplace/portal/signing_key.html", {"vendor": vendor, "keys": keys})


@login_required
def model_new(request):
    vendor = _vendor_or_none(request.user)
    if vendor is None:
        messages.info(request, "Register as a vendor first.")
        return redirect("portal-home")
    form = ModelCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            model = services.model_create(
                vendor=vendor, slug=data["slug"], name=data["name"], description=data["description"], card=data["card"],
                price_wei=data["price_eth"], license_duration=data["license_duration"], parent=data["parent"],
                upstream_bps=data["upstream_bps"],
            )
        except MarketplaceError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("portal-model", slug=model.slug)
    return render(request, "marketplace/portal/model_new.html", {"form": form})


@login_required
def model_manage(request, slug):
    model = _own_model(request, slug)
    create_call = services.model_create_call(model=model)
    terms_form = TermsFields(initial={
        "price_eth": format_eth(model.price_wei).split(" ")[0], "perpetual": model.license_duration == 0,
        "duration_days": model.license_duration // 86400 or None,
    })
    return render(request, "marketplace/portal/model_manage.html", {
        "model": model, "versions": model.versions.order_by("-created_at"), "create_call": create_call,
        "terms_form": terms_form, "card_html": render_card(model.card), **chain_context(),
        # buyers' devices reporting each version: counts only, never whose
        "device_counts": fleet_selectors.version_device_counts(model_id=model.chain_model_id),
        "receipts": _receipt_counts(model),
    })


def _receipt_counts(model: Model) -> receipt_selectors.ReceiptCounts:
    """The last 30 days' download receipts and the anchored roots covering them (docs/recorder.md)."""
    now = int(datetime.now(UTC).timestamp())
    return receipt_selectors.receipt_counts(model=model, start=now - 30 * 86400, end=now + 1)


@login_required
def model_edit(request, slug):
    model = _own_model(request, slug)
    form = ModelEditForm(request.POST or None, initial={"name": model.name, "description": model.description, "card": model.card})
    if request.method == "POST" and form.is_valid():
        services.model_update(model=model, **form.cleaned_data)
        messages.success(request, "Saved.")
        return redirect("portal-model", slug=slug)
    return render(request, "marketplace/portal/model_edit.html", {"model": model, "form": form})


def _json_error(exc: MarketplaceError) -> JsonResponse:
    return JsonResponse({"code": exc.code, "message": exc.message}, status=exc.status)


@login_required
@require_POST
def model_registered(request, slug):
    """The page sent `createModel` from the vendor's wallet: confirm it from the receipt."""
    model = _own_model(request, slug)
    try:
        body = json.loads(request.body or b"{}")
        model = services.model_register_from_tx(model=model, tx_hash=str(body.get("tx_hash", "")))
    except MarketplaceError as exc:
        return _json_error(exc)
    except (ValueError, TypeError):
        return JsonResponse({"code": "invalid_input", "message": "send {\"tx_hash\": \"0x…\"}"}, status=400)
    return JsonResponse({"status": model.status})


@login_required
@require_POST
def terms_call(request, slug):
    """`{to, data}` of `setTerms` with the form's terms, for the vendor's wallet to send."""
    model = _own_model(request, slug)
    form = TermsFields(request.POST)
    if not form.is_valid():
        return JsonResponse({"code": "invalid_input", "message": "check the terms", "fields": form.errors}, status=400)
    call = services.model_terms_call(
        model=model, price_wei=form.cleaned_data["price_eth"], license_duration=form.cleaned_data["license_duration"],
        listed=request.POST.get("listed", "on") == "on",
    )
    return JsonResponse(call)


@login_required
def version_new(request, slug):
    model = _own_model(request, slug)
    if request.method != "POST":
        return redirect("portal-model", slug=slug)
    try:
        version = services.version_create(model=model)
    except MarketplaceError as exc:
        messages.error(request, exc.message)
        return redirect("portal-model", slug=slug)
    return redirect("portal-version", slug=slug, version_id=version.pk)


@login_required
def version_page(request, slug, version_id):
    version = _own_version(request, slug, version_id)
    # only what waits for the relayer asks whether it is funded (a cached read, no RPC otherwise)
    waiting = version.status == Version.Status.PENDING_CHAIN or version.model.status == Model.Status.PENDING_CHAIN
    return render(request, "marketplace/portal/version.html", {
        "model": version.model, "version": version, "chunk_size": settings.PORTAL_UPLOAD_CHUNK_SIZE, **chain_context(),
        # the page's script adds them to the OMS statement it signs, as hallmark.oms.signing_statement does
        "oms_tool_state_paths": json.dumps(list(TOOL_STATE_FOLDERS)),
        "relayer_unfunded": waiting and relayer_funding().funded is False,
    })


@login_required
@require_POST
def revoke_call(request, slug, version_id):
    """`{to, data}` of `revokeVersion(model, version, reason)` for the vendor's wallet to send."""
    version = _own_version(request, slug, version_id)
    try:
        call = services.version_revoke(version=version, reason=request.POST.get("reason") or "")
    except MarketplaceError as exc:
        return _json_error(exc)
    return JsonResponse(call)


def _svg_bars(days: list[tuple[date, int, int]]) -> dict:
    """Bar chart data for the sales page, drawn as SVG by the template (no script, no CDN)."""
    peak = max((units for _, units, _ in days), default=0) or 1
    width = 100 / max(len(days), 1)
    return {
        "bars": [
            {"x": round(i * width, 3), "w": round(width * 0.8, 3), "h": round(80 * units / peak, 3), "y": round(90 - 80 * units / peak, 3),
             "day": d, "units": units, "revenue": format_eth(revenue)}
            for i, (d, units, revenue) in enumerate(days)
        ],
        "peak": peak,
    }


@login_required
def royalties_page(request):
    vendor = _vendor_or_none(request.user)
    addresses = list(selectors.wallet_addresses(user=request.user))
    end_day = date.today()
    start_day = end_day - timedelta(days=29)
    start = datetime.combine(start_day, time.min, tzinfo=UTC)
    end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)
    statement = statement_build(addresses=addresses, start=start, end=end, lines_limit=0)
    daily = statement_daily_sales(addresses=addresses, start=start, end=end)
    per_day = {day: daily.get(day, (0, 0)) for day in (start_day + timedelta(days=i) for i in range(30))}
    credits = royalty_credits_withdrawable(addresses=addresses)
    chain_ok = credits is not None
    shown = {s["model_id"] for s in statement.sales} | {m for r in statement.royalties_from_downstream for m in (r["downstream_model_id"], r["your_model_id"])}
    repos = {m.chain_model_id: m.repo_id for m in Model.objects.select_related("vendor").filter(chain_model_id__in=shown)}
    downstream = [
        {**r, "downstream": repos.get(r["downstream_model_id"], r["downstream_model_id"]), "yours": repos.get(r["your_model_id"], r["your_model_id"]),
         "amount": format_eth(r["amount_wei"])}
        for r in statement.royalties_from_downstream
    ]
    sales = [{**s, "repo_id": repos.get(s["model_id"], s["model_id"]), "gross": format_eth(s["gross_wei"]), "net": format_eth(s["net_to_vendor_wei"])} for s in statement.sales]
    return render(request, "marketplace/portal/royalties.html", {
        "vendor": vendor, "chart": _svg_bars([(d, v[0], v[1]) for d, v in per_day.items()]),
        "sales": sales, "downstream": downstream, "statement": statement,
        "closing": format_eth(statement.closing_balance_wei), "earned": format_eth(statement.earned_wei),
        "withdrawable": [{"address": c.address, "wei": c.wei, "eth": format_eth(c.wei)} for c in credits or []], "chain_ok": chain_ok,
        "withdraw_call": chain.call_data("withdraw") if chain_ok else None,
        "start": start_day, "end": end_day, **chain_context(),
    })



# ------------------------------------------------------------------------------- buyer pages


@login_required
def licences_page(request):
    """What each linked wallet holds and its purchase history: the selectors of GET /api/v1/royalties/licenses."""
    addresses = list(selectors.wallet_addresses(user=request.user))
    held = licenses_held(addresses=addresses)
    history = purchase_history(addresses=addresses, limit=200)
    models = {
        m.chain_model_id: m
        for m in Model.objects.select_related("vendor").filter(chain_model_id__in={h.model_id for h in held} | {e.model_id for e in history})
    }
    by_wallet = [
        {"address": address, "licences": [{"held": h, "model": models.get(h.model_id)} for h in held if h.licensee == address]}
        for address in addresses
    ]
    purchases = [{"entry": e, "model": models.get(e.model_id), "price": format_eth(int(e.price_wei or 0))} for e in history]
    return render(request, "marketplace/portal/licences.html", {
        "wallets": by_wallet, "held_count": len(held), "renewals_due": sum(1 for h in held if h.renewal_due), "purchases": purchases,
    })


class TokenCreateForm(forms.Form):
    """The Tokens page's form: the lifetime's bound is the service's (api_token_expiry), not the form's."""

    name = forms.CharField(max_length=100, label="Name", help_text="where you will use it, e.g. laptop or edge-box-3")
    expires_in_days = forms.IntegerField(min_value=1, max_value=100_000, label="Lifetime (days)")


def _tokens_page(request, form: TokenCreateForm, created: tuple | None = None, status: int = 200):
    tokens = ApiToken.objects.filter(user=request.user).select_related("created_by").order_by("-created_at")[:200]
    return render(request, "marketplace/portal/tokens.html", {
        "form": form, "tokens": tokens, "created": created, "max_days": settings.API_TOKEN_MAX_TTL_DAYS,
    }, status=status)


@never_cache  # the answer to a creation carries the secret: no cache may keep it
@login_required
def tokens_page(request):
    """Create an API token (its secret shown once, in this answer only), list and revoke them."""
    if request.method != "POST":
        days = settings.API_TOKEN_TTL_DAYS or settings.API_TOKEN_MAX_TTL_DAYS or 90
        return _tokens_page(request, TokenCreateForm(initial={"expires_in_days": days}))
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form, status=400)
    try:
        token, plaintext = services.api_token_create(
            user=request.user, name=form.cleaned_data["name"], expires_in_days=form.cleaned_data["expires_in_days"],
        )
    except MarketplaceError as exc:
        form.add_error("expires_in_days", exc.message)
        return _tokens_page(request, form, status=400)
    return _tokens_page(request, TokenCreateForm(initial={"expires_in_days": form.cleaned_data["expires_in_days"]}), (token, plaintext))


@login_required
@require_POST
def token_revoke(request, prefix):
    token = ApiToken.objects.filter(user=request.user, prefix=prefix).first()
    if token is None:
        raise Http404("you have no such token")
    revoked = services.api_token_revoke(token=token)
    others = revoked - 1
    messages.success(request, f"Token {token.prefix}… revoked" + (f", with {others} token{'s' if others != 1 else ''} it created." if others > 0 else "."))
    return redirect("portal-tokens")


# ------------------------------------------------------------------------------- fleet page


@login_required
def fleet_page(request):
    """The owner's edge devices and what each runs (its last signed inventory), each entry on a
    revoked or outdated version flagged (the marketplace's versions: fleet/ cannot read them)."""
    devices = list(fleet_selectors.devices_of(owner=request.user)[:500])
    entries = [entry for device in devices for entry in device.models.all()]
    revoked, latest = selectors.fleet_version_states(model_ids={entry.model_id for entry in entries} | {
        seat.model_id for device in devices for seat in device.seats.all()
    })
    models = {m.chain_model_id: m for m in Model.objects.select_related("vendor").filter(chain_model_id__in=set(latest) | {m for m, _ in revoked})}
    rows = []
    for device in devices:
        runs = []
        for entry in device.models.all():
            newest = latest.get(entry.model_id, 0)
            runs.append({
                "entry": entry, "revoked": (entry.model_id, entry.version) in revoked,
                "latest": newest if newest > entry.version else None,
            })
        seats = [models[s.model_id].repo_id if s.model_id in models else s.model_id[:18] + "…" for s in device.seats.all()]
        rows.append({"device": device, "runs": runs, "seats": seats, "flagged": sum(1 for r in runs if r["revoked"] or r["latest"])})
    return render(request, "marketplace/portal/fleet.html", {
        "rows": rows, "live_count": sum(1 for d in devices if d.revoked_at is None),
        "flagged_count": sum(row["flagged"] for row in rows if row["device"].revoked_at is None),
    })


@login_required
@require_POST
def fleet_device_remove(request, address):
    device = fleet_selectors.device_get_owned(owner=request.user, address=address)
    if device is None:
        raise Http404("you have no such device")
    fleet_services.device_revoke(device=device)
    messages.success(request, f"Device {device.name} removed: its seats are free and its tokens refused.")
    return redirect("portal-fleet")
