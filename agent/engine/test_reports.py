"""JUnit XML reports in a checkout: found by the service's globs (inside the checkout,
written or rewritten during the stage), parsed with junitparser. A report that is too big, malformed
or not JUnit is skipped with a note; it never fails the agent."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from xml.etree.ElementTree import Element

from junitparser import JUnitXml, JUnitXmlError

from agent.executors.repo_paths import PathEscape, inside
from store.models import TestOutcome
from store.tests import CaseRecord

MAX_REPORT_FILES = 500
_SKIPPED_DIRS = {".git", "node_modules"}
# Surefire's rerunFailingTestsCount (and pytest-rerunfailures' junit) mark a pass after
# failures with these children: the runner saw the test flake.
_RERUN_TAGS = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")


@dataclass
class Reports:
    """What a stage's reports came to."""

    files: list[str] = field(default_factory=list)  # relative paths read
    cases: list[CaseRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the stage log and the summary


@lru_cache(maxsize=256)
def _glob_regex(glob: str) -> re.Pattern[str]:
    """A report glob as a regex over a relative POSIX path: `**/` any directories (or
    none), `*` and `?` within one path part."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out + r"\Z")


Snapshot = dict[str, tuple[int, int]]  # relative path → (mtime in ns, size)


def _matching(workspace: Path, globs: list[str]) -> list[str]:
    """Relative paths of the files under `workspace` one of `globs` matches (symlinks
    listed, not followed)."""
    if not workspace.is_dir():
        return []
    patterns = [_glob_regex(g) for g in globs]
    found = []
    for directory, dirs, files in os.walk(workspace):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        rel_dir = os.path.relpath(directory, workspace)
        for name in sorted(files):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if any(p.match(rel) for p in patterns):
                found.append(rel)
    return found


def snapshot(workspace: Path, globs: list[str], older_than: float | None = None) -> Snapshot:
    """The report files there before a stage runs: afterwards only new or rewritten ones
    are its reports (an earlier stage's or run's are not). `older_than` (seconds): only
    the files last written before then (a stage followed after a restart)."""
    seen: Snapshot = {}
    for rel in _matching(workspace, globs):
        try:
            st = os.stat(workspace / rel)
        except OSError:
            continue
        if older_than is None or st.st_mtime < older_than:
            seen[rel] = (st.st_mtime_ns, st.st_size)
    return seen


def find_reports(workspace: Path, globs: list[str], before: Snapshot,
                 notes: list[str]) -> list[Path]:
    """Report files matching `globs` that are new or rewritten since `before`, resolved
    inside the checkout: a symlink leaving it is refused with a note."""
    found: list[Path] = []
    for rel in _matching(workspace, globs):
        try:
            path = inside(workspace, rel, "test report")
            st = path.stat()
        except PathEscape as exc:
            notes.append(f"skipped a report: {exc}")
            continue
        except OSError:
            continue
        if not path.is_file() or before.get(rel) == (st.st_mtime_ns, st.st_size):
            continue
        found.append(path)
        if len(found) >= MAX_REPORT_FILES:
            notes.append(f"more than {MAX_REPORT_FILES} report files: read the first "
                         f"{MAX_REPORT_FILES}")
            break
    return found


def read_reports(workspace: Path, paths: list[Path], max_mb: int, notes: list[str]
                 ) -> Reports:
    reports = Reports(notes=notes)
    root = Path(os.path.realpath(workspace))
    for path in paths:
        rel = os.path.relpath(path, root)
        size = path.stat().st_size
        if size > max_mb * 1024 * 1024:
            reports.notes.append(f"skipped report {rel}: {size / 1048576:.0f} MB is over the "
                                 f"{max_mb} MB limit (tests.max_report_mb)")
            continue
        try:
            with _no_cyclic_gc():
                cases = parse_report(path)
        except (ElementTree.ParseError, JUnitXmlError, ValueError) as exc:
            reports.notes.append(f"skipped report {rel}: not valid JUnit XML ({exc})")
            continue
        except (OSError, RecursionError, MemoryError) as exc:
            reports.notes.append(f"skipped report {rel}: could not be read "
                                 f"({exc.__class__.__name__}: {exc})")
            continue
        reports.files.append(rel)
        reports.cases.extend(cases)
    return reports


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Python's cycle collector paused while a report is read: its element tree and its
    cases are tens of thousands of container objects without a single cycle, which the
    collector would otherwise walk again and again as they pile up (a third of the cost
    of reading a 20,000-case report). Reference counting still frees everything; the
    collector resumes (if it ran before) as soon as the report is read."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_report(path: Path) -> list[CaseRecord]:
    """The test cases of one JUnit XML file (<testsuites> or <testsuite> at its root).
    junitparser parses it and checks its root; the cases are then read off its element
    tree directly (its per-case wrappers cost as much again as the parse on 20,000
    cases), a passed case — most of them — without looking further than its attributes
    and its children's tags."""
    root = JUnitXml.fromfile(str(path))._elem
    cases: list[CaseRecord] = []
    append = cases.append
    for suite in root.iterfind("testsuite"):
        suite_name = suite.get("name") or ""
        for case in suite.iter("testcase"):
            get = case.get
            outcome, message, trace = _PASSED, None, None
            for child in case:  # most often none, or only its output
                if child.tag in _NOT_PASSED_TAGS:
                    outcome, message, trace = _result(case)
                    break
            append(CaseRecord(get("classname") or suite_name, get("name") or "(unnamed)",
                              outcome, _seconds(get("time")), message, trace))
    return cases


_PASSED = TestOutcome.passed
_OUTCOME_TAGS = {"failure": TestOutcome.failed, "error": TestOutcome.error,
                 "skipped": TestOutcome.skipped}
_NOT_PASSED_TAGS = frozenset(("failure", "error", "skipped", *_RERUN_TAGS))


def _seconds(value: str | None) -> float | None:
    """A case's `time`: None when missing or not a finite number."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _result(case: Element) -> tuple[TestOutcome, str | None, str | None]:
    """What a case that did not simply pass came to: outcome, message, trace."""
    failing = skipped = rerun = None
    for child in case:
        tag = child.tag
        if tag in ("failure", "error"):
            failing = failing if failing is not None else child
        elif tag == "skipped":
            skipped = child
        elif tag in _RERUN_TAGS and rerun is None:
            rerun = child
    if failing is not None:
        return (_OUTCOME_TAGS[failing.tag], failing.get("message") or None,
                (failing.text or "").strip() or None)
    if skipped is not None:
        return TestOutcome.skipped, None, None
    assert rerun is not None
    return TestOutcome.flaky, rerun.get("message") or None, None
