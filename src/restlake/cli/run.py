"""`restlake run` and `restlake demo`."""


def run() -> None:
    raise NotImplementedError


def demo() -> None:
    raise NotImplementedError
