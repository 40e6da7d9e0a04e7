"""The real agent served on 127.0.0.1 (tests/api's fixture)."""

from tests.api.conftest import api  # noqa: F401
