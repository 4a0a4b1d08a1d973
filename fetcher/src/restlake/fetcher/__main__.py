"""``python -m restlake.fetcher run -f source.yaml``: the fetcher without the rest of the CLI."""

from restlake.cli.fetcher import app

app(prog_name="restlake-fetcher")
