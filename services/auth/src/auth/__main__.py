from pathlib import Path

from auth.app import create_app
from auth.settings import Settings
from shared.cli import main
from shared.migrations import MESSAGING, service_migrations

MIGRATIONS = [MESSAGING, service_migrations(Path(__file__).resolve().parents[2] / "migrations")]

if __name__ == "__main__":
    main(
        "auth",
        settings_cls=Settings,
        create_app=create_app,
        schema="auth",
        migrations_dir=MIGRATIONS,
    )
