"""``python -m streams``: the stream worker alone (what ``ttg worker`` runs)."""

from infra.config import get_settings
from infra.logs import setup_logging
from streams.cli import run_worker

if __name__ == "__main__":
    setup_logging("INFO")
    run_worker(get_settings())
