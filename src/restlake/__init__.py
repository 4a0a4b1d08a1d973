"""restlake: declarative, exactly-once ingestion of REST APIs into a Delta lake and Postgres.

The ``restlake`` package is spread over several distributions: this core (``restlake``) and one
per component (``restlake-fetcher``, ``restlake-operator``, ``restlake-jobs-spark``), which ship
``restlake/fetcher/``, ``restlake/operator/`` and ``restlake/jobs/spark/`` and no ``__init__`` of
their own. Installed from wheels they all land in one ``restlake/`` folder; installed editable
each stays in its own ``src/`` folder on ``sys.path``, and ``extend_path`` adds those folders to
this package's ``__path__`` so that ``restlake.fetcher`` is found there too. A regular package
(rather than a PEP 420 namespace with no ``__init__``) keeps ``__version__`` and ``py.typed`` here.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
