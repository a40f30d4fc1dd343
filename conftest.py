# Fixtures for real Postgres and Redis, shared by every test suite in the repository.
pytest_plugins = ["shared.testing.fixtures"]
