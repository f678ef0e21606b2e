"""The ``gvnfm`` console script: ``gvnfm ems ...`` goes straight to the EMS command, everything else to
the whole app (:mod:`gvnfm.cli.main`).

The EMS agent runs on every VM, many of them small: building the whole app imports every sub-command
(the VNFM, the store, FastAPI, rich...), ≈ 50 MiB and half a second the agent never uses. Flags, help
and exit codes of ``gvnfm ems`` are the same either way (one ``register`` defines them)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["ems"]:
        from gvnfm.ems.__main__ import main as ems_main

        ems_main(args[1:], prog_name="gvnfm ems")
        return
    from gvnfm.cli.main import app

    app(args=args, prog_name="gvnfm")


if __name__ == "__main__":
    main()
