"""The README's configuration table is the settings' own, and every variable is read through the settings."""

from __future__ import annotations

import re
from pathlib import Path

from worker.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parents[2]
READS = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[")


def test_readme_table_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- settings-table -->\n", 1)[1].split("<!-- /settings-table -->", 1)[0]
    assert table.strip() == settings_table(), (
        "regenerate it: python -c 'from worker.settings import settings_table; print(settings_table())'"
    )
    for field in Settings.model_fields.values():
        assert f"| `{field.validation_alias}` |" in table


def test_no_module_reads_the_environment_but_the_settings() -> None:
    sources = [*ROOT.glob("worker/**/*.py"), *ROOT.glob("webapp/**/*.py"), *ROOT.glob("dynaquant/**/*.py")]
    readers = [str(p.relative_to(ROOT)) for p in [*sources, ROOT / "celeryconfig.py"] if READS.search(p.read_text())]
    assert readers == [], f"read the variable through worker.settings.Settings instead: {readers}"
