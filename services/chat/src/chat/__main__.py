from pathlib import Path

from chat.app import CONSUMES, create_app
from chat.settings import Settings
from shared.cli import main
from shared.migrations import MESSAGING, TIER_PROJECTION, service_migrations

MIGRATIONS = [
    MESSAGING,
    TIER_PROJECTION,
    service_migrations(Path(__file__).resolve().parents[2] / "migrations"),
]


def run(argv: list[str] | None = None) -> None:
    main(
        "chat",
        settings_cls=Settings,
        create_app=create_app,
        schema="chat",
        migrations_dir=MIGRATIONS,
        has_outbox=True,
        consumes=CONSUMES,
        argv=argv,
    )


if __name__ == "__main__":
    run()
