"""`fc-assets`: the console command. Each subcommand lives beside the code it drives; this module only
collects them, so `fc-assets --help` stays fast (heavy imports happen inside the commands)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fc_assets")
def main() -> None:
    """fc_assets: Fluent Commerce <-> files, as Dagster assets."""


def _register() -> None:
    from fc_assets.sandbox.command import sandbox

    main.add_command(sandbox)

    from fc_assets.local_stack.demo import demo

    main.add_command(demo)

    from fc_assets.ingestion.check_file import check_file

    main.add_command(check_file)

    from fc_assets.ingestion.state_cli import state

    main.add_command(state)


_register()

if __name__ == "__main__":
    main()
