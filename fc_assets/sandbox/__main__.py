"""`python -m fc_assets.sandbox [flags]`: the same as `fc-assets sandbox`."""

from fc_assets.sandbox.command import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m fc_assets.sandbox")
