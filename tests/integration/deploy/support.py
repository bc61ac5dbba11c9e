"""What the deploy/ tests share: the project's deploy/ folder, a DAGSTER_HOME made from
deploy/dagster.yaml, the psycopg2 URL dagster-postgres wants."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    return home


def psycopg2_url(url: str) -> str:
    """`postgresql://...`: dagster-postgres connects with psycopg2, not the app's psycopg 3."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
