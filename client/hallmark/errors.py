"""Errors of the provenance core, each with a stable code a user can look up in the docs."""


class ProvenanceError(Exception):
    """Base class: `code` is stable and documented; the message says what to do."""

    code = "provenance_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class UnsafePath(ProvenanceError):
    """A file name that could escape its model directory or is not a plain relative path."""

    code = "unsafe_path"


class InvalidSignature(ProvenanceError):
    """A signature that is malformed or does not recover to the expected signer."""

    code = "invalid_signature"
