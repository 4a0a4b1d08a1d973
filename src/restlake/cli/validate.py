"""`restlake validate`."""


def validate() -> None:
    raise NotImplementedError
