"""README stays true: every setting is documented, and the test command is what CI runs."""

from __future__ import annotations

from pathlib import Path

from infra.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"TTG_{name.upper()}" for name in Settings.model_fields
        if f"TTG_{name.upper()}" not in readme
    ]
    assert not missing, f"README does not document: {', '.join(missing)}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in readme.split("## Who it is for")[0]
    assert "\n./dev test" in ci
