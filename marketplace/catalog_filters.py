"""The catalog's filters as the page (`/`, `/models`) reads them from a GET query: the same names,
bounds and meanings as `GET /api/v1/models` (marketplace/api/catalog.py), turned into the
arguments of the one selector both use, `selectors.model_search`."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from . import selectors

FORMATS = ["gguf", "safetensors", "onnx"]
LICENSE_KINDS = {"perpetual": "Perpetual", "timed": "Timed"}
ORDERING_LABELS = {
    "newest": "Newest", "oldest": "Oldest", "name": "Name", "price": "Price: low to high",
    "-price": "Price: high to low", "parameters": "Parameters: fewest", "-parameters": "Parameters: most",
}
# a bigint column: a larger bound is no filter a database can hold (an error, never a 500)
MAX_PARAMETERS = 2**63 - 1
wei_amount = RegexValidator(r"^[0-9]{1,78}$", "Enter a whole number of wei (digits only, 1 ETH = 10^18 wei).")


class CatalogFilterForm(forms.Form):
    """The filters of `GET /api/v1/models`, all optional and combined. Bound to request.GET."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    vendor = forms.CharField(required=False, max_length=64)
    format = forms.ChoiceField(required=False, choices=[("", "Any format"), *[(f, f) for f in FORMATS]])
    quantization = forms.CharField(required=False, max_length=64, widget=forms.Select)
    architecture = forms.CharField(required=False, max_length=64, widget=forms.Select)
    min_parameters = forms.IntegerField(required=False, min_value=0, max_value=MAX_PARAMETERS, label="Min parameters")
    max_parameters = forms.IntegerField(required=False, min_value=0, max_value=MAX_PARAMETERS, label="Max parameters")
    license = forms.ChoiceField(required=False, choices=[("", "Any licence"), *LICENSE_KINDS.items()], label="Licence")
    min_price_wei = forms.CharField(required=False, validators=[wei_amount], label="Min price (wei)")
    max_price_wei = forms.CharField(required=False, validators=[wei_amount], label="Max price (wei)")
    ordering = forms.ChoiceField(required=False, choices=[(k, ORDERING_LABELS.get(k, k)) for k in selectors.ORDERINGS], label="Sort by")

    def __init__(self, *args, facets: dict[str, list[str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        facets = facets or {}
        for name, anything in (("quantization", "Any quantization"), ("architecture", "Any architecture")):
            values = list(facets.get(name, []))
            chosen = self.data.get(name) if self.is_bound else None
            if chosen and chosen not in values:
                values.append(chosen)  # keep what the query asked for visible, even if nothing has it now
            self.fields[name].widget.choices = [("", anything), *[(v, v) for v in values]]
        for name in ("min_parameters", "max_parameters", "min_price_wei", "max_price_wei"):
            self.fields[name].widget.attrs.update(inputmode="numeric", placeholder="any")
        self.fields["q"].widget.input_type = "search"
        self.fields["q"].widget.attrs.update(placeholder="name, vendor or description")

    def clean(self):
        data = super().clean()
        for low, high, what in (("min_parameters", "max_parameters", "parameter count"), ("min_price_wei", "max_price_wei", "price")):
            a, b = data.get(low), data.get(high)
            if a not in (None, "") and b not in (None, "") and int(a) > int(b):
                self.add_error(high, f"The maximum {what} is below the minimum.")
        return data

    def search_kwargs(self) -> dict:
        """`selectors.model_search` arguments from the fields that are valid (an invalid one is
        left out, and shown as an error beside the results)."""
        v = getattr(self, "cleaned_data", {})
        return catalog_search_kwargs(v)


def catalog_search_kwargs(v: dict) -> dict:
    """Validated filters (by their API names) as `selectors.model_search` arguments: the one
    mapping from query names to the selector, for the page and the API alike."""
    return {
        "q": v.get("q") or "", "vendor": v.get("vendor") or "", "file_format": v.get("format") or "",
        "quantization": v.get("quantization") or "", "architecture": v.get("architecture") or "",
        "min_parameters": v.get("min_parameters"), "max_parameters": v.get("max_parameters"),
        "license_kind": v.get("license") or "",
        "min_price_wei": int(v["min_price_wei"]) if v.get("min_price_wei") else None,
        "max_price_wei": int(v["max_price_wei"]) if v.get("max_price_wei") else None,
        "ordering": v.get("ordering") or "newest",
    }
