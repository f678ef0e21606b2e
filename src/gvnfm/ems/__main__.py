"""``python -m gvnfm.ems [options]``: the same as ``gvnfm ems [options]``."""

from __future__ import annotations

import typer

from gvnfm.cli.ems_cmd import register


def main() -> None:
    app = typer.Typer(add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
