"""`python -m pipeline.records.migrate`: bring the database at WHOLEDOC_DATABASE_URL to the latest schema."""

import sys

from pipeline.errors import SettingsError
from pipeline.records.db import upgrade
from pipeline.settings import DataSettings, mask_url


def main() -> int:
    try:
        url = DataSettings.load().database_url
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    upgrade(url)
    print(f"migrated {mask_url(url)} to head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
