"""Entry point of the ``gvnfm`` command: every sub-command registers itself here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(name="gvnfm", help="A Generic VNF Manager and EMS, wire-compatible with Open Baton.",
                  no_args_is_help=True, add_completion=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"gvnfm {version('gvnfm')}")
        raise typer.Exit(0)


@app.callback()
def _main(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                            help="print the version and exit")) -> None:
    """gvnfm: VNFM (`vnfm`), EMS (`ems`), local deployment (`up`) and day-2 commands.

    Exit codes of every command: 0 ok, 1 the operation failed, 2 usage or environment (a wrong
    argument, no running `gvnfm up`, a broker that cannot be reached). `-o json` prints for tools."""

for module in ("vnfm_cmd", "ems_cmd", "up_cmd", "day2_cmd", "validate_cmd", "vim_cmd", "doctor_cmd"):
    try:
        importlib.import_module(f"gvnfm.cli.{module}").register(app)
    except ModuleNotFoundError as exc:  # a sub-command whose module is not there yet
        if exc.name != f"gvnfm.cli.{module}":
            raise

try:
    from gvnfm.store.migrate import register as _register_db

    _register_db(app)
except ModuleNotFoundError:
    pass


if __name__ == "__main__":
    app()
