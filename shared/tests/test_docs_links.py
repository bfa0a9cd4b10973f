"""Every relative link in the repository's Markdown files points at a file or directory that exists."""
import re
from pathlib import Path
from urllib.parse import unquote

from videoflix_shared.config import REPO_ROOT

SKIPPED_DIRS = {".git", ".venv", "node_modules", "var", "dist", ".pytest_cache", ".hypothesis"}
# [text](target "title") and ![alt](target); reference definitions `[name]: target`.
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def markdown_files() -> list[Path]:
    return sorted(path for path in REPO_ROOT.rglob("*.md")
                  if not SKIPPED_DIRS & set(path.relative_to(REPO_ROOT).parts))


def relative_links(text: str) -> list[str]:
    text = CODE.sub("", text)
    targets = INLINE.findall(text) + REFERENCE.findall(text)
    return [target for target in targets
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("#")]


def test_the_scan_finds_the_readme_links():
    links = relative_links((REPO_ROOT / "README.md").read_text())
    assert "docs/configuration.md" in links and "LICENSE" in links


def test_every_relative_link_resolves():
    broken = []
    for path in markdown_files():
        for target in relative_links(path.read_text()):
            resolved = (path.parent / unquote(target.split("#", 1)[0])).resolve()
            if not resolved.exists() or REPO_ROOT.resolve() not in (resolved, *resolved.parents):
                broken.append(f"{path.relative_to(REPO_ROOT)}: {target}")
    assert broken == []


def test_the_readme_stays_a_short_first_page():
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) < 250
