"""The parts of an IngestionSource's spec, one module per concern; ``restlake.contracts.spec``
assembles them into the resource."""
