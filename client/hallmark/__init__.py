"""Hallmark client: the provenance core shared by the marketplace server and the CLI.

This package imports no Django, so the server and edge devices run one copy of the manifest,
root digest and EIP-712 definitions.
"""

__version__ = "0.1.0"
