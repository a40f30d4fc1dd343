from __future__ import annotations

from pathlib import Path

import pytest

from shared.migrations import MESSAGING, migrate

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
WEBHOOK_SECRET = "whsec_billing_tests_" + "s" * 24


@pytest.fixture(scope="session")
def billing_database_url(database_url: str) -> str:
    migrate(database_url, "billing", [MESSAGING, MIGRATIONS])
    return database_url
