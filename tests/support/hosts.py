"""An EMS configured as a VM's user-data configures it: with the broker user the user-data carries
(a host user of its own when the VNFM made one), at the test's broker address and virtual host."""

from __future__ import annotations

from typing import Any

from gvnfm.ems.config import EmsConfig
from gvnfm.vim.ems_launch import EmsLaunch


def ems_config_from_userdata(userdata: str, hostname: str, broker_url: str, **extra: Any) -> EmsConfig:
    launch = EmsLaunch.from_userdata(userdata, hostname).with_broker_url(broker_url)
    return EmsConfig(hostname=hostname, type=launch.type, broker_url=launch.broker_url(),
                     host_user=launch.host_user, **extra)
