"""The Snowflake side of the Snowflake sink: its SQL, the connection, and one ledgered load.

``snowflake-connector-python`` is imported lazily (it ships with restlake-jobs-spark, which runs
the sync), so the core imports this package without it.
"""
