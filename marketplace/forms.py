"""Portal forms: input shapes and field validation only; rules live in the services."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from .models import Model

WEI_PER_ETH = Decimal(10) ** 18


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="for password resets")

    class Meta:
        model = get_user_model()
        fields = ("username", "email")


class VendorForm(forms.Form):
    slug = forms.SlugField(max_length=64, label="Vendor name", help_text="appears in your repo ids: <vendor>/<model>")
    display_name = forms.CharField(max_length=200, required=False)
    address = forms.ChoiceField(label="Signing wallet", help_text="the wallet that signs your versions")

    def __init__(self, *args, wallets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["address"].choices = [(w, w) for w in wallets]


def eth_to_wei(value: str) -> int:
    """'0.01' ETH -> 10**16 wei, exactly (no float on the way)."""
    try:
        amount = Decimal(value.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise forms.ValidationError("enter an amount like 0.01") from exc
    wei = amount * WEI_PER_ETH
    if amount < 0 or wei != wei.to_integral_value():
        raise forms.ValidationError("a price is a positive amount with at most 18 decimals")
    return int(wei)


class TermsFields(forms.Form):
    price_eth = forms.CharField(label="Price (ETH)", initial="0.01", max_length=40)
    perpetual = forms.BooleanField(label="Perpetual licence", required=False, initial=True)
    duration_days = forms.IntegerField(label="Licence length (days)", min_value=1, max_value=36500, required=False)

    def clean_price_eth(self):
        return eth_to_wei(self.cleaned_data["price_eth"])

    def clean(self):
        data = super().clean()
        if not data.get("perpetual") and not data.get("duration_days"):
            self.add_error("duration_days", "give a length, or make the licence perpetual")
        data["license_duration"] = 0 if data.get("perpetual") else int(data.get("duration_days") or 0) * 86400
        return data


class ModelCreateForm(TermsFields):
    slug = forms.SlugField(max_length=96, label="Model name (in the repo id)")
    name = forms.CharField(max_length=200, required=False, label="Display name")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    card = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}), required=False, label="Model card (Markdown, optional YAML front matter)"
    )
    parent = forms.ModelChoiceField(queryset=Model.objects.none(), required=False, label="Derived from (lineage)")
    upstream_percent = forms.DecimalField(
        label="Share of each sale for the parent's lineage (%)", min_value=0, max_value=100, decimal_places=2, initial=0, required=False
    )
    field_order = ["slug", "name", "description", "card", "price_eth", "perpetual", "duration_days", "parent", "upstream_percent"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent"].queryset = Model.objects.filter(status=Model.Status.LIVE).select_related("vendor").order_by("vendor__slug", "slug")
        self.fields["parent"].label_from_instance = lambda m: m.repo_id

    def clean(self):
        data = super().clean()
        percent = data.get("upstream_percent") or Decimal(0)
        data["upstream_bps"] = int(percent * 100)
        if data["upstream_bps"] and not data.get("parent"):
            self.add_error("upstream_percent", "a share upstream needs a parent model")
        return data


class ModelEditForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    card = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}), required=False, label="Model card (Markdown)")
