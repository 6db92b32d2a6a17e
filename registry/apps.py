from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from telemetry.metrics import register_scrape_collector

        from . import health

        register_scrape_collector(health.collect)
