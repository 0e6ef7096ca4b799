"""`python -m pipeline.records.migrate`: bring the database at WHOLEDOC_DATABASE_URL to the latest schema."""

import sys

from pipeline.records.db import database_url, upgrade


def main() -> int:
    url = database_url()
    upgrade(url)
    print(f"migrated {url.split('@')[-1]} to head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
