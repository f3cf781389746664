"""Every bad input in `tests/data/hostile_inputs.py` raises its exception with a message naming the mistake."""

from __future__ import annotations

import re

import pytest

from tests.data.hostile_inputs import HOSTILE_INPUTS


@pytest.mark.parametrize("row", HOSTILE_INPUTS, ids=lambda row: row.description)
def test_hostile_input_gets_a_clear_error(row):
    with pytest.raises(row.exception) as info:
        row.trigger()
    message = str(info.value)
    assert re.search(row.match, message), f"{row.description}: message was\n{message}"


def test_descriptions_are_unique():
    descriptions = [row.description for row in HOSTILE_INPUTS]
    assert len(descriptions) == len(set(descriptions))
