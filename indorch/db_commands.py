"""`indorch db ...`: schema migrations of the application database (Alembic and SQLAlchemy are
imported when a command runs, see `indorch.main`)."""

from __future__ import annotations

import typer

from resources.settings import database_url

db_app = typer.Typer(help="Migrate the application database.", no_args_is_help=True)


def _shown_url() -> str:
    from resources.database.engine import normalized_url

    return normalized_url(database_url()).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade_command(
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Create or bring the schema up to date (safe to run again)."""
    from resources.database.migrate import upgrade

    upgrade(database_url(), revision)
    typer.echo(f"database {_shown_url()} is at revision {revision}")


@db_app.command("downgrade")
def downgrade_command(
    revision: str = typer.Option(..., help="Target revision ('base' removes every table)."),
) -> None:
    """Step the schema back to an earlier revision."""
    from resources.database.migrate import downgrade

    downgrade(database_url(), revision)
    typer.echo(f"database {_shown_url()} is at revision {revision}")


@db_app.command("current")
def current_command() -> None:
    """Show the schema revision of the database and of the code."""
    from sqlalchemy import create_engine

    from resources.database.engine import normalized_url
    from resources.database.schema_version import current_revision, head_revision

    engine = create_engine(normalized_url(database_url()))
    try:
        typer.echo(f"database: {current_revision(engine) or 'empty'}; code: {head_revision()}")
    finally:
        engine.dispose()
