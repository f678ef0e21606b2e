"""Load a network service from disk: an NSD JSON file, a VNF package (``.tar`` or folder with
``Metadata.yaml``, a VNFD ``*.json`` and ``scripts/``), or a folder holding an ``nsd.json`` and/or
packages.

Conventions (descriptors.md §2.2, §3):
- An NSD ``vnfd`` entry is either an inline VNFD or a reference ``{"id": "<vendor>/<name>/<version>"}``
  resolved against the packages found beside the NSD (sub-folders with a ``Metadata.yaml`` and
  ``*.tar`` files). A reference may also name the ``id`` a package's VNFD declares.
- Inline VNFDs get their scripts from the ``scripts/`` folder beside the NSD: shipped as package
  scripts when the VNFD has no ``vnfPackageLocation``; served as a local git repository (``file://``
  URL, the VNFM sends CLONE_SCRIPTS) when its ``vnfPackageLocation`` is a URL this machine cannot reach
  (anything but ``file:``).
- A folder of packages without ``nsd.json`` is a service of all of them; a single package is a
  one-VNF service; a ``*.json`` holding a VNFD (``vdu`` but no ``vnfd``) is a one-VNF service too.

Everything that can be reported about one place is collected in ``ServiceBundle.problems`` and raised
by ``validation.validate`` together with the other problems; only input that cannot be read at all
raises ``DescriptorError`` here.
"""

from __future__ import annotations

import asyncio
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gvnfm.catalogue.descriptors import NetworkServiceDescriptor, VirtualNetworkFunctionDescriptor
from gvnfm.orchestrator.errors import DescriptorError
from gvnfm.orchestrator.gitrepo import GitRepoError, serve_folder
from gvnfm.orchestrator.packages import (
    SCRIPTS_DIR,
    VnfPackageContent,
    dotted_path,
    find_packages,
    folder_scripts,
    is_package_folder,
    is_remote_url,
    load_package,
    local_path_of,
    names_in,
    package_tar_bytes,
    read_file,
    read_json,
)

NSD_FILE = "nsd.json"

__all__ = ["NSD_FILE", "ServiceBundle", "VnfPackageContent", "aload_service", "load_service", "package_tar_bytes"]


@dataclass
class ServiceBundle:
    nsd: NetworkServiceDescriptor
    packages: dict[str, VnfPackageContent] = field(default_factory=dict)
    origin: Path | None = None
    #: problems found while loading (reported by validation with the others)
    problems: list[str] = field(default_factory=list)
    #: per ``nsd.vnfd`` entry, how messages name it: ``vnfd[1] "iperf-client"`` (+ package origin)
    places: list[str] = field(default_factory=list)

    def place(self, index: int) -> str:
        if 0 <= index < len(self.places):
            return self.places[index]
        vnfd = self.nsd.vnfd[index]
        return f'vnfd[{index}] "{vnfd.name}"' if vnfd.name else f"vnfd[{index}]"


# -- services -----------------------------------------------------------------------------------

@dataclass
class _PackageIndex:
    entries: list[tuple[VirtualNetworkFunctionDescriptor, VnfPackageContent]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        return [f"{v.vendor}/{v.name}/{v.version}" for v, _ in self.entries]

    def find(self, ref: str) -> tuple[VirtualNetworkFunctionDescriptor, VnfPackageContent] | None:
        for vnfd, content in self.entries:
            if ref in (f"{vnfd.vendor}/{vnfd.name}/{vnfd.version}", vnfd.id):
                return vnfd, content
        return None


def _index(paths: list[Path], state_dir: Path) -> _PackageIndex:
    index = _PackageIndex()
    for path in paths:
        vnfd, content, problems = load_package(path, state_dir)
        index.problems.extend(problems)
        if vnfd is not None:
            index.entries.append((vnfd, content))
    return index


def _service_of_packages(index: _PackageIndex, name: str, origin: Path) -> ServiceBundle:
    first = index.entries[0][0] if index.entries else None
    nsd = NetworkServiceDescriptor(name=name, vendor=first.vendor if first else None,
                                   version=first.version if first else None, vnfd=[])
    bundle = ServiceBundle(nsd=nsd, origin=origin, problems=list(index.problems))
    for i, (vnfd, content) in enumerate(index.entries):
        nsd.vnfd.append(vnfd)
        bundle.places.append(f'vnfd[{i}] "{vnfd.name}" (package {content.origin})')
        if vnfd.name:
            bundle.packages.setdefault(vnfd.name, content)
    return bundle


def _inline_package(vnfd: VirtualNetworkFunctionDescriptor, base: Path, state_dir: Path, place: str,
                    problems: list[str], served: dict[str, str | None]) -> VnfPackageContent:
    """Scripts for an inline VNFD of an NSD: its vnfPackageLocation, or the scripts/ folder beside the NSD."""
    name = vnfd.name or ""
    scripts_dir = base / SCRIPTS_DIR
    location = (vnfd.vnfPackageLocation or "").strip()
    origin = str(scripts_dir) if scripts_dir.is_dir() else str(base)
    content = VnfPackageContent(name=name, origin=origin)
    if location and not is_remote_url(location):
        local = local_path_of(location) or (base / location)
        if not local.exists():
            problems.append(f"{place}: vnfPackageLocation {location!r} does not exist")
        content.scripts_link = local.resolve().as_uri() if "://" not in location else location
        content.origin = str(local)
        content.script_names = names_in(local)
        return content
    if not scripts_dir.is_dir():
        if location:
            problems.append(f"{place}: vnfPackageLocation {location!r} is not reachable from this machine and "
                            f"there is no {SCRIPTS_DIR}/ folder beside the NSD to serve instead")
            content.script_names = None
        else:
            content.script_names = set()
        return content
    if location:
        key = str(scripts_dir.resolve())
        if key not in served:
            try:
                served[key] = serve_folder(scripts_dir, state_dir)
            except (GitRepoError, OSError) as exc:
                problems.append(f"{place}: cannot serve {scripts_dir} as a local git repository: {exc}")
                served[key] = None
        content.scripts_link = served[key]
        content.script_names = {p.name for p in scripts_dir.iterdir() if p.is_file()}
    else:
        content.scripts = folder_scripts(scripts_dir, place, problems)
        content.script_names = {s.name for s in content.scripts}
    return content


def _service_of_nsd(doc: Any, where: str, base: Path, state_dir: Path, origin: Path) -> ServiceBundle:
    if not isinstance(doc, dict):
        raise DescriptorError([f"{where}: must hold a JSON object (the NSD)"])
    problems: list[str] = []
    if "vdu" in doc and "vnfd" not in doc:        # a lone VNFD: a one-VNF service
        doc = {"name": doc.get("name"), "vendor": doc.get("vendor"), "version": doc.get("version"), "vnfd": [doc]}
    entries = doc.get("vnfd")
    if not isinstance(entries, list):
        raise DescriptorError([f"{where}: nsd.vnfd must be a list of VNFDs"
                               + (" (it is missing)" if entries is None else "")])
    refs = [e for e in entries if isinstance(e, dict) and _is_reference(e)]
    index = _index(find_packages(base), state_dir) if refs else _PackageIndex()
    problems.extend(index.problems)

    resolved: list[dict[str, Any]] = []
    places: list[str] = []
    from_package: dict[int, VnfPackageContent] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"{where}: nsd.vnfd[{i}] must be a JSON object")
            continue
        if _is_reference(entry):
            ref = str(entry.get("id"))
            found = index.find(ref)
            if found is None:
                known = ", ".join(index.keys()) or "none"
                problems.append(f"{where}: nsd.vnfd[{i}]: id {ref!r} matches no VNF package in {base} "
                                f"(expected <vendor>/<name>/<version>; packages found: {known})")
                continue
            vnfd, content = found
            from_package[len(resolved)] = content
            resolved.append(vnfd.to_wire())
            places.append(f'vnfd[{i}] "{vnfd.name}" (package {content.origin})')
        else:
            resolved.append(entry)
            places.append(f'vnfd[{i}] "{entry.get("name")}"' if entry.get("name") else f"vnfd[{i}]")
    doc = {**doc, "vnfd": resolved}
    try:
        nsd = NetworkServiceDescriptor.model_validate(doc)
    except ValidationError as exc:
        raise DescriptorError(problems + _nsd_problems(exc, where, places)) from exc

    bundle = ServiceBundle(nsd=nsd, origin=origin, problems=problems, places=places)
    served: dict[str, str | None] = {}
    for i, vnfd in enumerate(nsd.vnfd):
        if not vnfd.name or vnfd.name in bundle.packages:
            continue                      # reported by validation (no name / duplicate)
        packaged = from_package.get(i)
        bundle.packages[vnfd.name] = (packaged if packaged is not None
                                      else _inline_package(vnfd, base, state_dir, places[i], problems, served))
    return bundle


def _nsd_problems(exc: ValidationError, where: str, places: list[str]) -> list[str]:
    out = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        if len(loc) >= 2 and loc[0] == "vnfd" and isinstance(loc[1], int) and loc[1] < len(places):
            out.append(f"{places[loc[1]]}: {dotted_path('', loc[2:]) or 'entry'}: {e['msg']}")
        else:
            out.append(f"{dotted_path('nsd', loc)}: {e['msg']}")
    return out


def _is_reference(entry: dict[str, Any]) -> bool:
    return "id" in entry and "name" not in entry and "vdu" not in entry


def load_service(path: Path, state_dir: Path) -> ServiceBundle:
    """Load a network service from ``path`` (see the module doc for the accepted forms).
    ``state_dir`` receives the local git repositories served for unreachable script locations."""
    path = Path(path)
    if not path.exists():
        raise DescriptorError([f"{path}: no such file or folder"])
    if path.is_file():
        if path.suffix.lower() == ".json":
            return _service_of_nsd(read_json(read_file(path), str(path)), str(path), path.parent, state_dir, path)
        if tarfile.is_tarfile(path):
            return _single_package(path, state_dir)
        raise DescriptorError([f"{path}: neither an NSD/VNFD JSON file nor a VNF package tar"])
    if is_package_folder(path):
        return _single_package(path, state_dir)
    nsd_file = path / NSD_FILE
    if nsd_file.is_file():
        return _service_of_nsd(read_json(read_file(nsd_file), str(nsd_file)), str(nsd_file), path, state_dir,
                               path)
    packages = find_packages(path)
    if not packages:
        raise DescriptorError([f"{path}: no {NSD_FILE}, no Metadata.yaml and no VNF package (sub-folder with "
                               "Metadata.yaml, or *.tar) in this folder"])
    return _service_of_packages(_index(packages, state_dir), path.resolve().name, path)


def _single_package(path: Path, state_dir: Path) -> ServiceBundle:
    index = _index([path], state_dir)
    if not index.entries:
        raise DescriptorError(index.problems or [f"{path}: not a usable VNF package"])
    return _service_of_packages(index, index.entries[0][0].name or path.stem, path)


async def aload_service(path: Path, state_dir: Path) -> ServiceBundle:
    """``load_service`` off the event loop (it reads files and may run git)."""
    return await asyncio.to_thread(load_service, path, state_dir)
