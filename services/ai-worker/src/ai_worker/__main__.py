from ai_worker.app import create_app
from ai_worker.handlers import AUTH_STREAM, CHAT_STREAM, GROUP
from ai_worker.settings import Settings
from shared.cli import main


def run(argv: list[str] | None = None) -> None:
    main(
        GROUP,
        settings_cls=Settings,
        create_app=create_app,
        consumes=[CHAT_STREAM, AUTH_STREAM],
        argv=argv,
    )


if __name__ == "__main__":
    run()
