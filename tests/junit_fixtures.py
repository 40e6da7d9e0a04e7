"""JUnit XML as the test runners write it (pytest's --junitxml shape), for fixture repos,
fake stages and the bench."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

Case = tuple[str, str, str]  # classname, name, outcome (passed failed error skipped)


def junit_xml(cases: list[Case], *, message: str = "assert 1 == 2",
              trace: str = "def test():\n>       assert 1 == 2\nE       assert 1 == 2",
              suite: str = "pytest", extra: str = "") -> str:
    body = []
    counts = {"failed": 0, "error": 0, "skipped": 0}
    for classname, name, outcome in cases:
        head = f'<testcase classname={quoteattr(classname)} name={quoteattr(name)} time="0.012"'
        if outcome == "passed":
            body.append(head + "/>")
            continue
        counts[outcome] += 1
        tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[outcome]
        body.append(f"{head}><{tag} message={quoteattr(message)}>{escape(trace)}</{tag}>"
                    "</testcase>")
    return ('<?xml version="1.0" encoding="utf-8"?><testsuites>'
            f'<testsuite name="{suite}" errors="{counts["error"]}" '
            f'failures="{counts["failed"]}" skipped="{counts["skipped"]}" '
            f'tests="{len(cases)}" time="1.0">' + "".join(body) + extra
            + "</testsuite></testsuites>\n")


def many_cases(count: int, failing: int = 0, prefix: str = "tests.test_shop") -> list[Case]:
    """`count` cases over 50 classes, the first `failing` of them failed."""
    return [(f"{prefix}.TestPart{i % 50}", f"test_case_{i}",
             "failed" if i < failing else "passed") for i in range(count)]
