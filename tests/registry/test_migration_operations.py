"""AddIndexOnline: the indexes added to tables written while the marketplace runs (licences,
receipts) are built with CREATE INDEX CONCURRENTLY on PostgreSQL, outside a transaction, and
end valid; the migrations that use them go back and forth."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

CASES = [
    (("royalties", "0006_license_seats"), ("royalties", "0007_license_observed_block_hash"), "royalties_license", "license_observed_block"),
    (("marketplace", "0012_oms_signing"), ("marketplace", "0013_receipt_insert_indexes"), "marketplace_receipt", "receipt_batched"),
]


def index_state(table: str, name: str) -> tuple[bool, bool] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid, i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid WHERE c.relname = %s AND t.relname = %s",
            [name, table],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


@pytest.mark.parametrize(("before", "after", "table", "index"), CASES)
def test_the_index_is_built_concurrently_and_valid_and_the_migration_goes_back_and_forth(before, after, table, index):
    assert connection.vendor == "postgresql", "this test needs PostgreSQL (make test sets DATABASE_URL)"
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    migration = executor.loader.get_migration(*after)
    assert migration.atomic is False  # CREATE INDEX CONCURRENTLY cannot run in a transaction
    assert index_state(table, index) == (True, True)
    try:
        executor.migrate([before])
        assert index_state(table, index) is None
        executor = MigrationExecutor(connection)
        executor.migrate([after])
        assert index_state(table, index) == (True, True)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    assert index_state(table, index) == (True, True)
