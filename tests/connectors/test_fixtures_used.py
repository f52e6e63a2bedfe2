"""Every documented payload is exercised: a fixture no test names is dead documentation.

Usage is found by reading the test sources, not by recording loads at run time, so the answer
does not depend on which tests ran or in what order (`-k`, xdist, a skipped module).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import ROOT, TESTS, all_fixtures

FIXTURE_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*__[a-z0-9]+(_[a-z0-9]+)*$")


def fixtures() -> list[Path]:
    # Headers kept beside a payload (`dm__text.headers.json`) belong to it and are not fixtures.
    return [path for path in all_fixtures() if not path.name.endswith(".headers.json")]


def source_text() -> str:
    """The connector tests, minus this file (its own examples below must not count as usage)."""
    paths = sorted(p for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


def is_named(stem: str, sources: str) -> bool:
    """Named as a quoted string ("dm__text") or a file name (dm__text.json), not as a prefix."""
    return re.search(rf"""(["']){re.escape(stem)}\1|\b{re.escape(stem)}\.json\b""", sources) is not None


def test_there_are_fixtures_to_check() -> None:
    assert any(path.parent.parent.name == "simulator" for path in fixtures())


def test_every_fixture_is_used_by_a_test() -> None:
    sources = source_text()
    unused = [str(path.relative_to(ROOT)) for path in fixtures() if not is_named(path.stem, sources)]
    assert not unused, "fixtures no test names: " + ", ".join(unused)


@pytest.mark.parametrize("path", fixtures(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_fixture_is_named_event_type__variant(path: Path) -> None:
    assert FIXTURE_NAME.match(path.stem), f"{path.relative_to(ROOT)}: name it <event_type>__<variant>.json"


def test_the_usage_check_can_fail() -> None:
    """Guard against a check that always passes: a prefix or a bare word does not count."""
    assert is_named("dm__text", 'load_fixture("simulator", "dm__text")')
    assert is_named("dm__text", "see fixtures/dm__text.json")
    assert not is_named("dm__text", '"dm__text_long"') and not is_named("dm__text", "dm__text")
