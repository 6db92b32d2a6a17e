from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from telemetry.metrics import register_scrape_collector

        from . import receipt_selectors, signals

        signals.connect()
        register_scrape_collector(receipt_selectors.collect)  # receipts waiting for an anchored root
