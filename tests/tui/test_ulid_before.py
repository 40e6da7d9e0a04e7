"""The lines around a match are asked for in one round trip: `after=` the ULID just below
the match's id pages from the match itself."""

from __future__ import annotations

import pytest

from seamless_tui.widgets.log_search import ulid_before


@pytest.mark.parametrize(("ulid", "below"), [
    ("01M8MYGCC3CT0RJEJ2X6TKE4EA", "01M8MYGCC3CT0RJEJ2X6TKE4E9"),
    ("01M8MYGCC3CT0RJEJ2X6TKE4E0", "01M8MYGCC3CT0RJEJ2X6TKE4DZ"),  # 0 borrows
    ("01M8MYGCC3CT0RJEJ2X6TKE400", "01M8MYGCC3CT0RJEJ2X6TKE3ZZ"),
    ("01M8MYGCC3CT0RJEJ2X6TKE4J0", "01M8MYGCC3CT0RJEJ2X6TKE4HZ"),  # no I in ULIDs
])
def test_the_ulid_just_below_sorts_right_before(ulid: str, below: str):
    assert ulid_before(ulid) == below
    assert below < ulid  # the agent compares ids as strings


def test_nothing_is_below_the_smallest_ulid():
    with pytest.raises(ValueError):
        ulid_before("0" * 26)
