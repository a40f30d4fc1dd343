from ai_worker.app import create_app
from ai_worker.settings import Settings
from shared.cli import main

if __name__ == "__main__":
    main("ai-worker", settings_cls=Settings, create_app=create_app)
