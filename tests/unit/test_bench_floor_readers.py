"""The floor can read each server's stream of every directory with more readers, as the waves of
other tenants sharing the server do: what those readers cost the server is then measured."""

import pytest

from bench.floor import OTHER_READERS_VAR, other_readers_from


def test_no_other_readers_unless_asked() -> None:
    assert other_readers_from({}) == 0


def test_the_count_asked_for() -> None:
    assert other_readers_from({OTHER_READERS_VAR: "2"}) == 2


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_a_count_that_is_not_one_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=OTHER_READERS_VAR):
        other_readers_from({OTHER_READERS_VAR: value})
