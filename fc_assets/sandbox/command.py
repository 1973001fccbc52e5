"""`fc-assets sandbox` (placeholder until the sandbox lands)."""

import click


@click.command()
def sandbox() -> None:
    """Run the local Fluent API sandbox."""
    raise click.ClickException("not built yet")
