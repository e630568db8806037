"""The repository stands alone: a clone with nothing beside it has everything it needs.

No tracked file refers to a path outside the repository, and every relative link in the documentation leads to a
file inside it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".py", ".md", ".js", ".html", ".css", ".json", ".toml", ".ini", ".txt", ".cfg", ".yml", ".yaml"}
TEXT_NAMES = {"Makefile", "run", ".gitignore"}
# The places this workspace keeps beside a checkout; a clone elsewhere has neither.
OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.])/work/")
# A quoted relative path, or a markdown link target, that climbs: '../x', "../../y", (../z).
CLIMBING = re.compile(r"""["'(]((?:\.\./)+[^"')\s]*)""")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
PARENTS = re.compile(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\]")


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout.split("\0")
        files = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "node_modules", "__pycache__", ".local-state"}
        files = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES)]


def text_of(path: Path) -> str:
    if path.suffix == ".json" and "paypal_specs" in path.parts:
        return ""  # PayPal's own documents, copied unchanged
    if path == Path(__file__).resolve():
        return ""  # this file plants outside references on purpose
    return path.read_text(encoding="utf-8", errors="replace")


def inside(target: Path) -> bool:
    # Lexically: a link into a git-ignored folder that is a symlink (.venv) still names a path of the checkout.
    return Path(os.path.normpath(target)).is_relative_to(ROOT)


def outside_references(path: Path, text: str) -> list[str]:
    found = [f"{path.relative_to(ROOT)}: {match.group(0)!r}" for match in OUTSIDE.finditer(text)]
    for match in CLIMBING.finditer(text):
        if not inside(path.parent / match.group(1)):
            found.append(f"{path.relative_to(ROOT)}: climbs out with {match.group(1)!r}")
    for match in PARENTS.finditer(text):
        depth = len(path.relative_to(ROOT).parts) - 1
        if int(match.group(1)) > depth:
            found.append(f"{path.relative_to(ROOT)}: parents[{match.group(1)}] is above the repository")
    return found


def broken_links(path: Path, text: str) -> list[str]:
    broken = []
    for match in MARKDOWN_LINK.finditer(text):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        resolved = path.parent / target
        if not inside(resolved) or not resolved.exists():
            broken.append(f"{path.relative_to(ROOT)}: link to {target!r}")
    return broken


def test_no_tracked_file_refers_to_a_path_outside_the_repository():
    found = [ref for path in tracked_files() for ref in outside_references(path, text_of(path))]
    assert found == []


def test_every_relative_link_in_the_documentation_leads_to_a_file_of_the_repository():
    found = [link for path in tracked_files() if path.suffix == ".md" for link in broken_links(path, text_of(path))]
    assert found == []


@pytest.mark.parametrize(
    "text",
    [
        "see ../shared/API.md",
        'SPEC_DIR = Path(__file__).parent / "../../../elsewhere"',
        "open /work/shared/paypal",
        "ROOT = Path(__file__).resolve().parents[5]",
    ],
)
def test_the_check_catches_a_planted_outside_reference(text):
    assert outside_references(ROOT / "tests" / "unit" / "planted.py", text)


def test_the_check_catches_a_broken_markdown_link():
    assert broken_links(ROOT / "docs" / "planted.md", "[gone](nowhere.md) [out](../../outside.md)")
    assert not broken_links(ROOT / "docs" / "planted.md", "[contract](API.md#errors) [web](https://example.com)")


def test_test_tiers_share_support_only_through_tests_support():
    """A tier (unit, integration, e2e, browser, infra) imports from its own package or `tests.support` only."""
    crossing = []
    for path in (ROOT / "tests").rglob("*.py"):
        tier = path.relative_to(ROOT / "tests").parts[0]
        for found in re.findall(r"^\s*from tests\.(\w+)|^\s*import tests\.(\w+)", path.read_text(), re.M):
            imported = found[0] or found[1]
            if imported not in ("support", tier):
                crossing.append(f"{path.relative_to(ROOT)} imports tests.{imported}")
    assert crossing == []
