"""SQL migrations, shipped as package data and applied by restlake.postgres.migrations."""
