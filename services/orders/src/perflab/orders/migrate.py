"""`python -m perflab.orders.migrate`: brings the orders database to the newest schema."""

from perflab.common.migrate import upgrade
from perflab.orders.settings import get_settings


def main() -> None:
    upgrade("perflab.orders:migrations", get_settings().database_url)


if __name__ == "__main__":
    main()
