"""Hosts for VNFC instances: capacity accounting against the VIM, and host creation.

Capacity: the VIM's free slots minus what is reserved. A deployment reserves the VNFC count of every
VNFR up front (the whole service must fit before anything is sent); a GRANT reserves (again) for its
VNFR; each created host turns one reserved slot into a real host. A reservation is keyed by
(NSR id, VNFR name), so a VNFR's own reservation never counts against itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from gvnfm.catalogue.records import (
    ConnectionPoint,
    Ip,
    VirtualDeploymentUnit,
    VirtualNetworkFunctionRecord,
    VNFCInstance,
    VNFComponent,
)
from gvnfm.catalogue.userdata import set_hostname
from gvnfm.vim.base import Host, HostSpec, Vim, VimError

log = logging.getLogger(__name__)

Key = tuple[str, str]


def vnfc_count(vdus: list[VirtualDeploymentUnit] | None) -> int:
    """Hosts a VNF starts with: one per ``vnfc`` entry of every VDU."""
    return sum(len(vdu.vnfc or []) for vdu in vdus or [])


def _ordered_cps(component: VNFComponent) -> list[ConnectionPoint]:
    return sorted(component.connection_point or [], key=lambda cp: cp.interfaceId or 0)


@dataclass
class Placement:
    """One VNFC instance to create: where it goes in the VNFR and what the VIM is asked for."""

    vdu: VirtualDeploymentUnit
    component: VNFComponent
    spec: HostSpec


class Resources:
    def __init__(self, vim: Vim, *, concurrency: int = 8) -> None:
        self.vim = vim
        self.concurrency = max(1, concurrency)
        self.reserved: dict[Key, int] = {}
        self._issued: set[str] = set()

    # -- capacity ---------------------------------------------------------------------------------
    def available(self, exclude: Key | None = None) -> int:
        others = sum(n for k, n in self.reserved.items() if k != exclude)
        return self.vim.free() - others

    def reserve(self, key: Key, count: int) -> bool:
        """Reserve ``count`` hosts for ``key`` (replacing its earlier reservation) if they fit."""
        if count > self.available(exclude=key):
            return False
        self.reserved[key] = count
        return True

    def reserve_all(self, needs: dict[Key, int]) -> Key | None:
        """Reserve every entry or none; returns the first key that does not fit (None = all reserved)."""
        free = self.available() + sum(self.reserved.get(k, 0) for k in needs)
        total = 0
        for key, count in needs.items():
            total += count
            if total > free:
                return key
        self.reserved.update(needs)
        return None

    def release(self, key: Key) -> None:
        self.reserved.pop(key, None)

    def release_nsr(self, nsr_id: str) -> None:
        for key in [k for k in self.reserved if k[0] == nsr_id]:
            del self.reserved[key]

    def _consume(self, key: Key) -> None:
        left = self.reserved.get(key, 0) - 1
        if left > 0:
            self.reserved[key] = left
        else:
            self.reserved.pop(key, None)

    # -- hosts ------------------------------------------------------------------------------------
    def new_hostname(self, vnfr_name: str) -> str:
        """``<vnfr name>-<7 random digits>``, unique among the VIM's hosts and names handed out."""
        for _ in range(1000):
            name = f"{vnfr_name}-{random.randrange(10**6, 10**7)}"
            if name not in self._issued and name not in self.vim.hosts:
                self._issued.add(name)
                return name
        raise VimError(f"no free hostname for {vnfr_name}")

    def placements(self, vnfr: VirtualNetworkFunctionRecord, userdata: str,
                   only: list[tuple[VirtualDeploymentUnit, VNFComponent]] | None = None) -> list[Placement]:
        """One placement per ``vnfc`` of every VDU (or per (VDU, component) of ``only``)."""
        pairs = only if only is not None else [(vdu, c) for vdu in vnfr.vdu or [] for c in vdu.vnfc or []]
        result = []
        for vdu, component in pairs:
            hostname = self.new_hostname(vnfr.name)
            cps = _ordered_cps(component)
            nets = [cp.virtual_link_reference for cp in cps if cp.virtual_link_reference]
            floating = [cp.virtual_link_reference for cp in cps if cp.virtual_link_reference and cp.floatingIp]
            image = (vdu.vm_image or ["default"])[0]
            result.append(Placement(vdu, component, HostSpec(
                hostname=hostname, vnfr_name=vnfr.name, image=image, networks=nets,
                userdata=set_hostname(userdata, hostname), floating_networks=floating)))
        return result

    async def create(self, key: Key, placements: list[Placement],
                     on_created: Callable[[Host], None] | None = None) -> list[Host]:
        """Create the hosts (a few at a time); on a VimError remove those already created and raise."""
        gate = asyncio.Semaphore(self.concurrency)
        created: list[Host] = []

        async def one(p: Placement) -> Host:
            async with gate:
                host = await self.vim.create_host(p.spec)
            created.append(host)
            self._consume(key)
            if on_created is not None:
                on_created(host)
            return host

        try:
            results = await asyncio.gather(*(one(p) for p in placements), return_exceptions=True)
        except asyncio.CancelledError:
            await asyncio.shield(self.remove([h.hostname for h in created]))
            self.release(key)
            raise
        finally:
            for p in placements:
                self._issued.discard(p.spec.hostname)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.remove([h.hostname for h in created])
            self.release(key)
            first = failures[0]
            if isinstance(first, VimError):
                raise first
            raise VimError(f"creating a host failed: {first!r}") from first
        return [r for r in results if isinstance(r, Host)]

    async def remove(self, hostnames: list[str]) -> list[str]:
        """Remove hosts; returns the error texts (a host already gone is not an error)."""
        errors: list[str] = []
        for hostname in hostnames:
            if hostname not in self.vim.hosts:
                continue
            try:
                await self.vim.remove_host(hostname)
            except VimError as exc:
                errors.append(f"{hostname}: {exc}")
                log.error("event=host_remove_failed hostname=%s error=%r", hostname, str(exc))
            except Exception as exc:
                errors.append(f"{hostname}: {exc!r}")
                log.exception("event=host_remove_crashed hostname=%s", hostname)
        return errors

    # -- records ----------------------------------------------------------------------------------
    def instance(self, placement: Placement, host: Host, state: str = "ACTIVE") -> VNFCInstance:
        cps = _ordered_cps(placement.component)
        nets = [cp.virtual_link_reference for cp in cps if cp.virtual_link_reference]
        ips = [Ip(id=str(uuid.uuid4()), netName=n, ip=host.ips[n]) for n in nets if n in host.ips]
        floating = [Ip(id=str(uuid.uuid4()), netName=n, ip=host.floating_ips[n])
                    for n in (cp.virtual_link_reference for cp in cps if cp.floatingIp)
                    if n and n in host.floating_ips]
        return VNFCInstance(
            id=str(uuid.uuid4()), hostname=host.hostname, state=state, vim_id=self.vim.name,
            vc_id=host.hostname, vnfComponent=VNFComponent(id=placement.component.id), ips=ips, floatingIps=floating,
            connection_point=[ConnectionPoint.model_validate(cp.to_wire()) for cp in cps])


def add_instances(vnfr: VirtualNetworkFunctionRecord, pairs: list[tuple[Placement, VNFCInstance]]) -> None:
    """Put new VNFC instances into their VDUs and refresh ``vnf_address``."""
    for placement, inst in pairs:
        vdu = placement.vdu
        vdu.vnfc_instance = [*(vdu.vnfc_instance or []), inst]
    vnfr.vnf_address = [ip.ip for inst in vnfr.vnfc_instances() for ip in inst.ips or [] if ip.ip]


def remove_instance(vnfr: VirtualNetworkFunctionRecord, hostname: str) -> VNFCInstance | None:
    for vdu in vnfr.vdu or []:
        for inst in vdu.vnfc_instance or []:
            if inst.hostname == hostname:
                vdu.vnfc_instance = [i for i in vdu.vnfc_instance or [] if i is not inst]
                vnfr.vnf_address = [ip.ip for i in vnfr.vnfc_instances() for ip in i.ips or [] if ip.ip]
                return inst
    return None
