"""Provenance on the server: chain client, contract artifact, relayer outbox, hashing, verification."""
