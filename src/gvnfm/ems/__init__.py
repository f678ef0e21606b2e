"""gvnfm's EMS agent: a hardened, wire-compatible replacement of Open Baton's EMS (``gvnfm ems``)."""

from gvnfm.ems.agent import EmsAgent, EmsFleet
from gvnfm.ems.commands import EmsCommandHandler
from gvnfm.ems.config import ConfigError, EmsConfig, load_config, load_properties

__all__ = ["ConfigError", "EmsAgent", "EmsCommandHandler", "EmsConfig", "EmsFleet", "load_config",
           "load_properties"]
