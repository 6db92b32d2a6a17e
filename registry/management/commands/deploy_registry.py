"""Deploy ModelRegistry to any chain by RPC URL and record it in deployments/<chain_id>.json."""

import getpass
import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from eth_account import Account

from registry import chain
from registry.chain import ChainError
from registry.services import registry_deploy, registry_has_code


class Command(BaseCommand):
    help = (
        "Deploy the ModelRegistry contract. The key comes from --keystore (password from "
        "DEPLOYER_KEYSTORE_PASSWORD or a prompt) or from the environment variable named by "
        "--private-key-env (default DEPLOYER_PRIVATE_KEY); on a local anvil chain (31337) the "
        "first development account is used when neither is given. Keys are never printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rpc-url", default=None, help="JSON-RPC URL (default: CHAIN_RPC_URL)")
        parser.add_argument("--keystore", default=None, help="encrypted JSON keystore of the deployer")
        parser.add_argument("--private-key-env", default="DEPLOYER_PRIVATE_KEY")
        parser.add_argument("--fee-bps", type=int, default=None, help="platform fee (default PLATFORM_FEE_BPS)")
        parser.add_argument("--fee-recipient", default=None, help="platform fee recipient (default: owner)")
        parser.add_argument("--owner", default=None, help="contract owner (default: deployer)")
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing when the recorded deployment for this chain still has code",
        )
        parser.add_argument("--json", action="store_true", help="print the deployment record as JSON")

    def handle(self, *args, **options):
        rpc_url = options["rpc_url"] or settings.CHAIN_RPC_URL
        try:
            w3 = chain.web3(rpc_url)
            with chain.chain_errors():
                chain_id = w3.eth.chain_id
            if options["if_missing"]:
                record = chain.read_deployment(chain_id)
                if record and registry_has_code(record["address"], rpc_url):
                    self._report(record, options, "already deployed")
                    return
            key = self._key(options, chain_id)
            record = registry_deploy(
                rpc_url=rpc_url,
                private_key=key,
                fee_bps=options["fee_bps"] if options["fee_bps"] is not None else settings.PLATFORM_FEE_BPS,
                fee_recipient=options["fee_recipient"],
                owner=options["owner"],
            )
        except ChainError as exc:
            raise CommandError(f"[{exc.code}] {exc}") from exc
        self._report(record, options, "deployed")

    def _key(self, options, chain_id):
        if options["keystore"]:
            password = os.environ.get("DEPLOYER_KEYSTORE_PASSWORD")
            if password is None:
                password = getpass.getpass("keystore password: ")
            with open(options["keystore"], encoding="utf-8") as fh:
                try:
                    return chain.hex0x(bytes(Account.decrypt(json.load(fh), password)))
                except ValueError as exc:
                    raise CommandError(f"cannot decrypt {options['keystore']}: {exc}") from exc
        key = os.environ.get(options["private_key_env"]) or settings.RELAYER_PRIVATE_KEY
        if key:
            return key
        if chain_id == chain.DEV_CHAIN_ID:
            return chain.development_keys()[0]
        raise CommandError(
            f"no deployer key: pass --keystore or set {options['private_key_env']} (chain id {chain_id})"
        )

    def _report(self, record, options, verb):
        if options["json"]:
            self.stdout.write(json.dumps(record))
        else:
            self.stdout.write(
                f"ModelRegistry {verb} at {record['address']} on chain {record['chain_id']} "
                f"(block {record['block_number']}); record: {chain.deployment_path(record['chain_id'])}"
            )
