"""Fixtures of the fault scenarios (docs/reliability.md, "Faults on real processes"): a private PostgreSQL and a
private Redis (tests/faults/services.py) shared by the scenarios, each module in a database of its own; moto's S3
behind a cut-off; the results table (tests/faults/report.py) written with `--fault-report`."""

import pytest

from pipeline.records.db import make_engine, session_factory
from pipeline.records.models import new_id
from tests.faults import report
from tests.faults.services import CutOff, PrivatePostgres, PrivateRedis


@pytest.fixture(scope="session")
def private_pg():
    pg = PrivatePostgres()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    r = PrivateRedis(tmp_path_factory.mktemp("faults-redis"))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def s3_cutoff(moto_endpoint):
    """moto's S3 reached through a cut-off the test can take down and bring back."""
    cut = CutOff(moto_endpoint)
    yield cut
    cut.close()


@pytest.fixture(scope="session")
def fault_rows(request):
    """Scenarios append report.Row here; written to docs/fault-results.md only with --fault-report."""
    rows: list[report.Row] = []
    yield rows
    if request.config.getoption("--fault-report") and rows:
        report.write(rows)


@pytest.fixture(scope="module")
def module_db(private_pg, request):
    """A database of this module's own on the private PostgreSQL (the reconciler sweeps every row of its database)."""
    return private_pg.new_database(f"m_{request.module.__name__.rsplit('.', 1)[-1]}_{new_id()[:8]}".lower())


@pytest.fixture(scope="module")
def records(module_db):
    engine = make_engine(module_db)
    yield session_factory(engine)
    engine.dispose()
