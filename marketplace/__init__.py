"""Vendors, models, versions, artifacts, uploads, portal pages, buyer API, Hugging Face endpoints."""
