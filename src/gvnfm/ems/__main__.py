"""``python -m gvnfm.ems [options]`` (also the ``gvnfm-ems`` script): the same as ``gvnfm ems [options]``,
without building the whole ``gvnfm`` app."""

from __future__ import annotations

import sys

from gvnfm.cli.ems_cmd import main as ems_main


def main(argv: list[str] | None = None, prog_name: str = "gvnfm-ems") -> None:
    sys.exit(ems_main(argv, prog=prog_name))


if __name__ == "__main__":
    main(prog_name="python -m gvnfm.ems")
