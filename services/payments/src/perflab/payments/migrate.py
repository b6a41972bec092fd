"""`python -m perflab.payments.migrate`: brings the payments database to the newest schema."""

from perflab.common.migrate import upgrade
from perflab.payments.settings import get_settings


def main() -> None:
    upgrade("perflab.payments:migrations", get_settings().database_url)


if __name__ == "__main__":
    main()
