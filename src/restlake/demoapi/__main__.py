"""``python -m restlake.demoapi serve …``: ``restlake demo-api`` without the console script."""

from restlake.cli.demoapi import app

if __name__ == "__main__":
    app(prog_name="python -m restlake.demoapi")
