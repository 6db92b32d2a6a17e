"""Licensing: terms, the license mirror, license checks, royalty ledger."""
