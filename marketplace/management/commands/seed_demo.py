"""Create (idempotently) a demo vendor, model and published version, and two buyers.

Everything goes through the same services as real use: wallets sign in with Ethereum (SIWE), the
model and the version are signed by the vendor's key and relayed through the outbox, and the
licensed buyer pays `purchaseLicense` from its own wallet. Local anvil chain (31337) only: the
demo wallets are anvil's public development accounts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from eth_account import Account

from hallmark import eip712, oms
from hallmark.siwe import sign_message, siwe_message
from marketplace import selectors, services
from marketplace.demo import demo_oms_bundle, demo_signing_key, write_demo_gguf
from marketplace.models import Model, Vendor, Version
from registry import chain
from registry.chain import ChainError

VENDOR_SLUG = "hallmark-demo"
MODEL_SLUG = "tiny-llama-gguf"
FILE_NAME = "tiny-llama-f32.gguf"
PRICE_WEI = 10**16  # 0.01 ETH
DURATION = 365 * 24 * 3600


class Command(BaseCommand):
    help = "Seed the marketplace with a demo vendor, a published GGUF model and two buyers."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object (endpoint, tokens, ...)")

    def handle(self, *args, **options):
        if settings.CHAIN_ID != chain.DEV_CHAIN_ID:
            raise CommandError("seed_demo uses anvil's development accounts and runs on chain id 31337 only")
        try:
            result = self._seed()
        except ChainError as exc:
            raise CommandError(f"[{exc.code}] {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            for key, value in result.items():
                self.stdout.write(f"{key}: {value}")

    # ------------------------------------------------------------------------------------

    def _seed(self) -> dict:
        chain.check_chain_id()
        keys = chain.development_keys()
        vendor_key, licensed_key, unlicensed_key = keys[1], keys[2], keys[3]
        vendor_user = self._user_with_wallet("demo-vendor", vendor_key)
        licensed_user = self._user_with_wallet("demo-buyer", licensed_key)
        unlicensed_user = self._user_with_wallet("demo-guest", unlicensed_key)
        vendor = services.vendor_register(
            user=vendor_user, slug=VENDOR_SLUG, address=Account.from_key(vendor_key).address, display_name="Hallmark Demo"
        )
        # the demo vendor signs OMS bundles too (model.sig); registered before the version is hashed
        services.vendor_signing_key_register(vendor=vendor, public_key_pem=oms.public_key_pem(demo_signing_key()))
        model = self._model(vendor, vendor_key)
        version = self._version(model, vendor_key)
        self._buy(model, licensed_key)
        # prove the licence through the same check the download path uses (mirrors it too)
        services.download_authorize(user=licensed_user, version=version)

        _, licensed_token = services.api_token_create(user=licensed_user, name="seed_demo")
        _, unlicensed_token = services.api_token_create(user=unlicensed_user, name="seed_demo")
        _, vendor_token = services.api_token_create(user=vendor_user, name="seed_demo")
        return {
            "endpoint": settings.PUBLIC_BASE_URL,
            "repo_id": model.repo_id,
            "revision": "main",
            "files": [{"path": a.path, "sha256": a.sha256, "size": a.size} for a in version.artifacts.order_by("path")],
            "licensed_token": licensed_token,
            "unlicensed_token": unlicensed_token,
            "vendor_token": vendor_token,
            "vendor_address": vendor.address,
            "vendor_public_key_pem": oms.public_key_pem(demo_signing_key()),
            "rpc_url": settings.CHAIN_RPC_URL,
            "chain_id": settings.CHAIN_ID,
            "registry_address": chain.registry_address(),
            "model_id": model.chain_model_id,
            "version": version.number,
        }

    def _user_with_wallet(self, username: str, key: str):
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save()
        # the wallet signs in with Ethereum (EIP-4361), exactly as a browser wallet or the CLI would
        domain = urlparse(settings.PUBLIC_BASE_URL).netloc
        nonce = services.siwe_nonce_create().nonce
        text = siwe_message(
            domain=domain, address=Account.from_key(key).address, uri=settings.PUBLIC_BASE_URL,
            chain_id=settings.CHAIN_ID, nonce=nonce,
        )
        services.siwe_sign_in(message=text, signature=sign_message(text, key), domain=domain, user=user)
        return user

    def _model(self, vendor: Vendor, vendor_key: str) -> Model:
        model = Model.objects.filter(vendor=vendor, slug=MODEL_SLUG).first()
        if model is not None and model.status == Model.Status.FAILED:
            raise CommandError(f"the demo model failed on chain: {model.error_code} {model.error_message}")
        if model is None:
            model = services.model_create(
                vendor=vendor,
                slug=MODEL_SLUG,
                name="Tiny Llama (GGUF, F32)",
                description="A tiny llama-architecture GGUF model for trying the marketplace end to end.",
                price_wei=PRICE_WEI,
                license_duration=DURATION,
            )
        if model.status == Model.Status.AWAITING_SIGNATURE:
            signature = eip712.sign_typed_data(model.typed_data, vendor_key)
            model = services.model_submit_signature(model=model, signature=signature)
        if model.status == Model.Status.PENDING_CHAIN:
            model = services.model_anchor(model_id=model.pk)
        if model.status != Model.Status.LIVE:
            raise CommandError(f"the demo model is {model.status}: {model.error_code} {model.error_message}")
        return model

    def _version(self, model: Model, vendor_key: str) -> Version:
        version = selectors.live_versions(model=model).first()
        if version is not None:
            return version
        version = model.versions.exclude(status__in=[Version.Status.FAILED, Version.Status.REJECTED]).order_by("-pk").first()
        if version is None:
            version = services.version_create(model=model)
        if version.status == Version.Status.DRAFT:
            if not version.artifacts.exists():
                with tempfile.TemporaryDirectory() as tmp:
                    path = write_demo_gguf(Path(tmp) / FILE_NAME)
                    with open(path, "rb") as fh:
                        services.artifact_upload(version=version, path=FILE_NAME, stream=fh, length=Path(path).stat().st_size)
            services.version_finalize(version=version)
        version = services.version_hash_and_inspect(version_id=version.pk)
        if version.status == Version.Status.AWAITING_SIGNATURE:
            signature = eip712.sign_typed_data(version.typed_data, vendor_key)
            version = services.version_submit_signature(version=version, signature=signature, oms_bundle=demo_oms_bundle(version))
        version = services.version_anchor(version_id=version.pk)
        if version.status != Version.Status.LIVE:
            raise CommandError(f"the demo version is {version.status}: {version.error_code} {version.error_message}")
        return version

    def _buy(self, model: Model, buyer_key: str) -> None:
        """The buyer's own wallet pays; the marketplace never holds a buyer's key."""
        buyer = Account.from_key(buyer_key)
        contract = chain.registry_contract()
        w3 = chain.web3()
        model_id = chain.to_bytes32(model.chain_model_id)
        with chain.chain_errors():
            if contract.functions.hasLicense(model_id, buyer.address).call():
                return
            price = chain.model_on_chain(model_id, contract=contract).price_wei
            tx = contract.functions.purchaseLicense(model_id, buyer.address, price).build_transaction(
                {"from": buyer.address, "value": price, "nonce": w3.eth.get_transaction_count(buyer.address, "pending")}
            )
            tx_hash = w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=settings.RECEIPT_TIMEOUT)
        if receipt["status"] != 1:
            raise CommandError("the demo purchase reverted")
