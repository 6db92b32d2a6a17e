"""Migration operations for tables that are written while the marketplace runs.

`AddIndexOnline`: on PostgreSQL the index is built with `CREATE INDEX CONCURRENTLY`, so downloads,
receipts and licence checks go on writing the table while it builds (a plain `CREATE INDEX`
holds a lock that stops every write until the build ends, and, inside a migration's transaction,
with whatever else that transaction locked). The migration that uses it must say
`atomic = False`. On other databases (SQLite for `make run`) it is a plain `AddIndex`.
"""

from __future__ import annotations

from django.db.migrations.operations import AddIndex


class AddIndexOnline(AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)

    def describe(self) -> str:
        return super().describe() + " (concurrently on PostgreSQL)"
