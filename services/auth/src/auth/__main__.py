from pathlib import Path

from auth.app import CONSUMES, create_app
from auth.settings import Settings
from shared.cli import main
from shared.migrations import MESSAGING, TIER_PROJECTION, service_migrations

MIGRATIONS = [
    MESSAGING,
    TIER_PROJECTION,
    service_migrations(Path(__file__).resolve().parents[2] / "migrations"),
]


def run(argv: list[str] | None = None) -> None:
    main(
        "auth",
        settings_cls=Settings,
        create_app=create_app,
        schema="auth",
        migrations_dir=MIGRATIONS,
        has_outbox=True,
        consumes=CONSUMES,
        argv=argv,
    )


if __name__ == "__main__":
    run()
