"""The reply stream's entries as its readers see them (shared.replies)."""

from shared.replies import End, parse, so_far


def test_a_stored_entry_after_the_end_leaves_the_end_as_it_was() -> None:
    entries = [
        ("1-0", {"type": "token", "text": "Hel"}),
        ("2-0", {"type": "token", "text": "lo"}),
        ("3-0", End("completed", finish_reason="STOP").fields()),
        ("4-0", {"type": "stored"}),
    ]
    state = so_far(entries)
    assert state.text == "Hello"
    assert state.end == End("completed", finish_reason="STOP")


def test_entries_of_unknown_kinds_are_skipped() -> None:
    assert parse({"type": "stored"}) is not None
    assert parse({"type": "something-newer"}) is None
    assert so_far([("1-0", {"type": "something-newer"})]).end is None
