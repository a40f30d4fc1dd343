from gateway.app import create_app
from gateway.settings import Settings
from shared.cli import main

if __name__ == "__main__":
    main("gateway", settings_cls=Settings, create_app=create_app)
