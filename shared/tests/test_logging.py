import json
import logging

import pytest
import structlog

from shared.logging import configure_logging, mask_phone


@pytest.fixture
def json_logs(capsys):
    """Sets up the service's real logging, rendering to the captured stderr (from inside the
    test, where that stream is open); returns a reader of the lines. Undone after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def start():
        configure_logging("test", json=True)
        return lambda: [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    try:
        yield start
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level


def test_phone_numbers_are_masked_in_every_field_and_in_tracebacks(json_logs):
    read = json_logs()
    log = structlog.get_logger("test")
    try:
        raise ValueError("Key (mobile_number)=(+917373737373) already exists.")
    except ValueError:
        log.exception("db.failed", number="+14155552671", nested={"to": ["+447911123456"]})
    logging.getLogger("psycopg").warning("stdlib line about +917373737373")
    text = json.dumps(read())
    for number in ("+917373737373", "+14155552671", "+447911123456"):
        assert number not in text
        assert mask_phone(number) in text


def test_masking_keeps_the_country_code_and_the_last_four_digits():
    assert mask_phone("+917373737373") == "+91******7373"


def test_other_numbers_are_left_alone(json_logs):
    read = json_logs()
    structlog.get_logger("test").info("http.request", status=429, duration_ms=12.5, port=8000)
    [line] = read()
    assert line["status"] == 429 and line["port"] == 8000
