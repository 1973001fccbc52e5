"""`fc-assets`: the console command. Each subcommand lives beside the code it drives and is imported only
when it runs (or when `--help` lists it), so one command's dependencies never break another: a production
image without the `local` extra still runs `fc-assets check-file`, and `fc-assets demo` there says which
extra to install instead of a traceback.

To add a command: one line in `COMMANDS` (name -> "module:attribute", and the extra it needs if any).
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, tuple[str, str | None]] = {
    "check-file": ("fc_assets.ingestion.read.check_file:check_file", None),
    "demo": ("fc_assets.local_stack.demo:demo", "local"),
    "sandbox": ("fc_assets.sandbox.command:sandbox", None),
    "state": ("fc_assets.ingestion.deliver.state_cli:state", None),
}
"""Subcommands: name -> ("module:attribute", the pyproject extra it needs beyond the base install)."""

SHORT_HELP: dict[str, str] = {
    "check-file": "Validate a file of a feed; print the totals as JSON.",
    "demo": "Run the platform locally: sandbox, S3, SFTP, Dagster UI.",
    "sandbox": "Run the local Fluent Commerce API sandbox.",
    "state": "A feed's state in the lake: watermark, snapshot, ledger.",
}
"""What `fc-assets --help` lists, so listing the commands imports none of them (the demo stack alone takes
seconds); a command missing here is imported to ask for its help."""


def missing_extra(name: str, extra: str, exc: ModuleNotFoundError) -> click.Command:
    """A stand-in for a command whose optional dependencies are not installed: it explains and exits 1."""

    def fail() -> None:
        raise click.ClickException(
            f"`fc-assets {name}` needs the '{extra}' extra (module {exc.name!r} is not installed): "
            f"install '.[{extra}]' (e.g. `pip install '.[{extra}]'`, or `make install` in a checkout)"
        )

    return click.Command(
        name, callback=fail, help=f"(needs the '{extra}' extra: install '.[{extra}]')", add_help_option=False
    )


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, extra = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if extra is None or (exc.name or "").startswith("fc_assets"):
                raise
            return missing_extra(cmd_name, extra, exc)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in SHORT_HELP:
                rows.append((name, SHORT_HELP[name]))
            elif (cmd := self.get_command(ctx, name)) is not None:
                rows.append((name, cmd.get_short_help_str(formatter.width - 6 - max(map(len, COMMANDS)))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fc_assets")
def main() -> None:
    """fc_assets: Fluent Commerce <-> files, as Dagster assets."""


if __name__ == "__main__":
    main()
