"""Search's pure parts: a headline's markers to snippet pieces, and the cursor."""

import uuid
from datetime import UTC, datetime

import pytest

from chat.repository.search import START, STOP, Hit
from chat.search import Part, decode_cursor, encode_cursor, snippet_parts
from shared.errors import ValidationFailed


def marked(word: str) -> str:
    return f"{START}{word}{STOP}"


@pytest.mark.parametrize(
    ("headline", "parts"),
    [
        ("no match marked", [Part("no match marked", False)]),
        (marked("yoga"), [Part("yoga", True)]),
        (
            f"  Slow {marked('yoga')} {marked('breathing')},\n\n daily  ",
            [
                Part("Slow ", False),
                Part("yoga", True),
                Part(" ", False),
                Part("breathing", True),
                Part(", daily", False),
            ],
        ),
        (
            f"{marked('run')}{marked('ning')} … {marked('ran')}",
            [
                Part("running", True),
                Part(" … ", False),
                Part("ran", True),
            ],
        ),
        ("", []),
    ],
)
def test_a_headline_becomes_plain_pieces_on_one_line(headline, parts):
    assert snippet_parts(headline) == parts


def test_a_cursor_gives_back_the_exact_sort_key():
    hit = Hit(
        kind="reply",
        chatroom_id=uuid.uuid4(),
        chatroom_name="r",
        message_id=uuid.uuid4(),
        created_at=datetime(2026, 11, 29, 14, 0, 0, 123456, tzinfo=UTC),
        rank=0.060792699456214905,  # a float4 rank widened to float8
        hit_id=uuid.uuid4(),
        snippet="",
    )
    after = decode_cursor(encode_cursor(hit))
    assert (after.rank, after.created_at, after.hit_id) == (hit.rank, hit.created_at, hit.hit_id)


@pytest.mark.parametrize(
    "cursor", ["", "%%%", "WyJhIl0", "bnVsbA", "W3RydWUsIjIwMjYtMDEtMDEiLCIxIl0"]
)
def test_anything_else_is_not_a_cursor(cursor):
    with pytest.raises(ValidationFailed):
        decode_cursor(cursor)
