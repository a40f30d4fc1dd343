from pathlib import Path

from billing.app import CONSUMES, create_app
from billing.commands import rebuild, reprocess
from billing.settings import Settings
from shared.cli import main
from shared.migrations import MESSAGING, service_migrations

MIGRATIONS = [MESSAGING, service_migrations(Path(__file__).resolve().parents[2] / "migrations")]


def run(argv: list[str] | None = None) -> None:
    main(
        "billing",
        settings_cls=Settings,
        create_app=create_app,
        schema="billing",
        migrations_dir=MIGRATIONS,
        has_outbox=True,
        consumes=CONSUMES,
        commands={"rebuild": rebuild, "reprocess": reprocess},
        argv=argv,
    )


if __name__ == "__main__":
    run()
