"""Runs a service's Alembic migrations, which live inside its package."""

from alembic import command
from alembic.config import Config


def upgrade(script_location: str, database_url: str, revision: str = "head") -> None:
    """`script_location` is a package resource such as "perflab.orders:migrations"."""
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, revision)
