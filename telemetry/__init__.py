"""Observability shared by every app: the Prometheus metric families (one definition of each
name and its labels), structured JSON logs and the request id. Sits below the apps, above the
client: it imports Django settings and prometheus_client, never an app."""
