"""``gvnfm validate PATH``: every problem of a network service at once, without deploying it."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from gvnfm.cli.day2_cmd import FAILED, OK, USAGE, Output, fail


def image_check() -> Callable[[str], bool]:
    """The image check of the local VIMs' hosts (the one ``gvnfm up`` uses)."""
    try:
        from gvnfm.vim.images import image_exists
    except ImportError:
        return lambda _image: True
    return image_exists


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        path: Path = typer.Argument(..., help="NSD JSON, VNF package (.tar or folder), or a folder of them"),
        vim: str = typer.Option("process", "--vim", help="the VIM it will be deployed on (process or netns)"),
        state_dir: Path = typer.Option(Path(".gvnfm"), "--state-dir",
                                       help="the state dir `gvnfm up` will use (it serves local scripts from there)"),
        output: Output = typer.Option(Output.text, "--output", "-o", help="text, or json for tools"),
    ) -> None:
        """Check a network service without deploying it: errors and warnings, all at once. Exit 0 when
        there is no error (warnings only), 1 when there is one, 2 when PATH cannot be read."""
        from gvnfm.orchestrator.checks import Finding, check_service
        from gvnfm.orchestrator.errors import DescriptorError
        from gvnfm.orchestrator.loader import load_service

        if not path.exists():
            fail(f"{path} does not exist", USAGE)
        with tempfile.TemporaryDirectory(prefix="gvnfm-validate-") as tmp:
            catalogue = Path(tmp).resolve()
            try:
                bundle = load_service(path, catalogue)
                found = check_service(bundle, image_exists=image_check(), vim=vim,
                                      served=(catalogue, (state_dir / "catalogue").resolve()))
            except DescriptorError as exc:      # not loadable at all: those problems are all there is
                found = [Finding("error", p) for p in exc.problems]
            except OSError as exc:
                fail(f"cannot read {path}: {exc}", USAGE)
        errors = [f.message for f in found if f.level == "error"]
        warnings = [f.message for f in found if f.level == "warning"]
        if output == "json":
            typer.echo(json.dumps({"ok": not errors, "errors": errors, "warnings": warnings}, indent=2))
        else:
            console = Console()
            for text in errors:
                console.print(f"[red]error:[/] {text}", highlight=False, markup=True, soft_wrap=True)
            for text in warnings:
                console.print(f"[yellow]warning:[/] {text}", highlight=False, soft_wrap=True)
            summary = (f"{len(errors)} error(s), {len(warnings)} warning(s)" if found
                       else f"{path}: no problem found")
            console.print(summary, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(FAILED if errors else OK)
