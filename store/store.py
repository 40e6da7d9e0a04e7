"""`Store`: every query of Seamless behind one object, grouped by domain in mixins."""

from __future__ import annotations

from store.auth import AuthQueries
from store.changes import ChangeQueries
from store.configs import ConfigQueries, Conflict, NotFound
from store.deployments import DeployQueries
from store.logs import LogQueries
from store.runs import RunQueries
from store.tests import TestQueries

__all__ = ["Store", "NotFound", "Conflict"]


class Store(ConfigQueries, RunQueries, LogQueries, DeployQueries, AuthQueries,
            ChangeQueries, TestQueries):
    """Open with `Store(path)`; migrations run on open."""
