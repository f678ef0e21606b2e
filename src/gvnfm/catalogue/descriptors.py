"""Descriptors as the NFVO reads them: VNFD, NSD and VNF dependencies."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from gvnfm.catalogue.base import WireModel
from gvnfm.catalogue.records import Configuration, LifecycleEvent, VirtualDeploymentUnit, VirtualLink


class RequiresParameters(WireModel):
    parameters: list[str] | None = None


class DeploymentFlavour(WireModel):
    id: str | None = None
    flavour_key: str | None = None


class VirtualNetworkFunctionDescriptor(WireModel):
    id: str | None = None
    name: str | None = None
    vendor: str | None = None
    version: str | None = None
    type: str | None = None
    endpoint: str | None = None
    vdu: list[VirtualDeploymentUnit] | None = None
    virtual_link: list[VirtualLink] | None = None
    lifecycle_event: list[LifecycleEvent] | None = None
    configurations: Configuration | None = None
    deployment_flavour: list[DeploymentFlavour] | None = None
    vnfPackageLocation: str | None = None
    requires: dict[str, RequiresParameters] | None = None
    provides: list[str] | None = None


def _name_of(v: Any) -> Any:
    """`vnf_dependency` source/target: a plain string (NFVO >= 5) or a legacy `{"name": ...}` object."""
    if isinstance(v, dict):
        return v.get("name")
    return v


class VNFDependency(WireModel):
    id: str | None = None
    source: str
    target: str
    parameters: list[str] = Field(default_factory=list)

    @field_validator("source", "target", mode="before")
    @classmethod
    def _normalise(cls, v: Any) -> Any:
        return _name_of(v)


class VirtualLinkDescriptor(WireModel):
    id: str | None = None
    name: str | None = None
    cidr: str | None = None


class NetworkServiceDescriptor(WireModel):
    id: str | None = None
    name: str | None = None
    vendor: str | None = None
    version: str | None = None
    vnfd: list[VirtualNetworkFunctionDescriptor] = Field(default_factory=list)
    vld: list[VirtualLinkDescriptor] | None = None
    vnf_dependency: list[VNFDependency] | None = None
