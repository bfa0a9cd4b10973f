"""Every variable the settings read is in .env.template, and every one there is in docs/configuration.md."""
import re

from videoflix_shared.config import REPO_ROOT

TEMPLATE = (REPO_ROOT / ".env.template").read_text()
TEMPLATE_VARIABLES = re.findall(r"^([A-Z][A-Z0-9_]*)=", TEMPLATE, flags=re.M)


def test_every_setting_is_in_the_template():
    source = (REPO_ROOT / "shared" / "videoflix_shared" / "config.py").read_text()
    read = set(re.findall(r'get\(\s*"([A-Z][A-Z0-9_]*)"', source))
    assert read and read <= set(TEMPLATE_VARIABLES)


def test_every_template_variable_is_in_the_configuration_table():
    table = (REPO_ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in TEMPLATE_VARIABLES if f"| `{name}` |" not in table]
    assert missing == []
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", table, flags=re.M)
    assert sorted(rows) == sorted(set(TEMPLATE_VARIABLES)), "one row per variable, none that is not in the template"
