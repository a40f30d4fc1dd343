from gateway.app import create_app
from gateway.settings import Settings
from shared.cli import main


def run(argv: list[str] | None = None) -> None:
    main(
        "gateway",
        settings_cls=Settings,
        create_app=create_app,
        argv=argv,
    )


if __name__ == "__main__":
    run()
