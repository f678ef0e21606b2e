"""``gvnfm vim``: maintenance of the local VIMs (``cleanup``: hosts left by a crashed run; ``images``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from gvnfm.cli.day2_cmd import FAILED, USAGE, Output


def register(app: typer.Typer) -> None:
    vim = typer.Typer(name="vim", help="Local VIMs: clean up after crashed runs, list images.",
                      no_args_is_help=True, add_completion=False)

    @vim.command("cleanup")
    def cleanup(
        run_dir: Path | None = typer.Option(None, "--run-dir",
                                            help="records of netns hosts (default /run/gvnfm/netns)"),
        output: Output = typer.Option(Output.text, "--output", "-o", help="text, or json for tools"),
    ) -> None:
        """Remove netns hosts and bridges whose `gvnfm` process is gone (SIGKILL, power loss)."""
        from gvnfm.vim.netns import NetnsVim
        from gvnfm.vim.netns_state import Registry

        registry = Registry(run_dir)
        try:
            removed = asyncio.run(NetnsVim.cleanup_stale(registry.run_dir))
        except PermissionError as exc:
            typer.echo(f"cannot clean up {registry.run_dir}: {exc} (the netns VIM runs as root; so must this)",
                       err=True)
            raise typer.Exit(USAGE) from None
        except Exception as exc:
            typer.echo(f"clean-up failed: {exc}", err=True)
            raise typer.Exit(FAILED) from None
        if output == "json":
            typer.echo(json.dumps({"run_dir": str(registry.run_dir), "removed": [str(i) for i in removed]}))
            return
        if not removed:
            typer.echo(f"nothing to clean up ({registry.run_dir})")
        for item in removed:
            typer.echo(f"removed {item}")

    @vim.command("images")
    def images(output: Output = typer.Option(Output.text, "--output", "-o", help="text, or json for tools")) -> None:
        """List the images a VNFD's vm_image can name."""
        from gvnfm.vim.images import known_images

        if output == "json":
            typer.echo(json.dumps([{"name": i.name, "patterns": list(i.patterns), "shims": sorted(i.shims),
                                    "description": i.description} for i in known_images()], indent=2))
            return
        for image in known_images():
            typer.echo(f"{image.name}")
            typer.echo(f"  matches: {', '.join(image.patterns)}")
            typer.echo(f"  shims:   {', '.join(sorted(image.shims)) or 'none'}")
            typer.echo(f"  {image.description}")

    app.add_typer(vim, name="vim")
