"""``python -m gvnfm.ems [options]`` (also the ``gvnfm-ems`` script): the same as ``gvnfm ems [options]``,
without building the whole ``gvnfm`` app."""

from __future__ import annotations

import typer

from gvnfm.cli.ems_cmd import register


def main(argv: list[str] | None = None, prog_name: str = "gvnfm-ems") -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app(args=argv, prog_name=prog_name)


if __name__ == "__main__":
    main(prog_name="python -m gvnfm.ems")
