"""Test helpers and pytest fixtures shared by every service's tests."""
