"""Entry point of the ``gvnfm`` command: every sub-command registers itself here."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(name="gvnfm", help="A Generic VNF Manager and EMS, wire-compatible with Open Baton.",
                  no_args_is_help=True, add_completion=False)


def _print_version(value: bool) -> None:
    if value:
        from gvnfm import __version__

        typer.echo(f"gvnfm {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """gvnfm: VNFM (`vnfm`), EMS (`ems`), local deployment (`up`) and day-2 commands."""

for module in ("vnfm_cmd", "ems_cmd", "up_cmd", "day2_cmd", "vim_cmd", "doctor_cmd"):
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
