"""restlake: declarative, exactly-once ingestion of REST APIs into a Delta lake and Postgres."""

__version__ = "0.1.0"
