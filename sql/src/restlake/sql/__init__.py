"""restlake's Postgres migrations, ``NNN_name.sql`` in this folder: applied in order, once each, by
``restlake.postgres.migrations``. A data-only package, so that the files are found the same way
from a wheel and from an editable checkout."""
