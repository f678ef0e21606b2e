"""The VIM interface the local orchestrator allocates hosts through."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path


class VimError(Exception):
    """A host could not be created or removed; the message names the host and the cause."""


@dataclass
class HostSpec:
    """What the orchestrator asks for: one VNFC instance."""

    hostname: str
    vnfr_name: str
    image: str
    networks: list[str]              # virtual link names, in interface order
    userdata: str                    # the VNFM's user-data, with Hostname= already filled in
    floating_networks: list[str] = field(default_factory=list)  # networks that get a floating IP


@dataclass
class Host:
    hostname: str
    ips: dict[str, str]              # network name -> address
    floating_ips: dict[str, str] = field(default_factory=dict)
    root: Path | None = None         # the host's filesystem root (process VIM) or overlay upper dir
    scripts_path: str = "/opt/openbaton/scripts"
    image: str = "default"


class Vim(abc.ABC):
    name: str
    capacity: int

    @abc.abstractmethod
    async def create_host(self, spec: HostSpec) -> Host: ...

    @abc.abstractmethod
    async def remove_host(self, hostname: str) -> None: ...

    async def rebuild_host(self, hostname: str, image: str | None = None) -> Host:
        """Rebuild a host as a VIM rebuilds a server (the NFVO's VNFR restart): same name, addresses and
        user-data, a fresh disk of ``image`` (None: its own), its processes gone. VIMs that cannot say so."""
        raise VimError(f"the {self.name} VIM cannot rebuild hosts (host {hostname})")

    @abc.abstractmethod
    async def close(self) -> None:
        """Remove every host this VIM created."""

    @property
    @abc.abstractmethod
    def hosts(self) -> dict[str, Host]: ...

    def free(self) -> int:
        return self.capacity - len(self.hosts)
