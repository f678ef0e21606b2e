"""An EMS configured as a VM's user-data configures it: the ``[ems]`` properties file the user-data
script writes (with the broker user it carries, a host user of its own when the VNFM made one), read as
the EMS reads it, at the test's broker address and virtual host."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gvnfm.ems.config import EmsConfig, load_properties
from gvnfm.vim.ems_launch import EmsLaunch


def ems_config_from_userdata(userdata: str, hostname: str, broker_url: str, **extra: Any) -> EmsConfig:
    launch = EmsLaunch.from_userdata(userdata, hostname).with_broker_url(broker_url)
    with tempfile.TemporaryDirectory(prefix="gvnfm-ems-props-") as folder:
        path = Path(folder) / "ems.properties"
        path.write_text(launch.properties())
        values: dict[str, Any] = dict(load_properties(path))
    return EmsConfig(**(values | extra))
