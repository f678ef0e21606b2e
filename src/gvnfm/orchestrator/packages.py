"""VNF packages (descriptors.md §3): a ``.tar`` or a folder with ``Metadata.yaml``, one VNFD ``*.json``
and a flat ``scripts/`` folder; and the helpers the loader shares (file reading, script locations)."""

from __future__ import annotations

import io
import json
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import ValidationError

from gvnfm.catalogue.descriptors import VirtualNetworkFunctionDescriptor
from gvnfm.catalogue.scripts import Script, VNFPackage
from gvnfm.orchestrator.errors import DescriptorError
from gvnfm.orchestrator.gitrepo import GitRepoError, serve_folder

#: Largest descriptor/script file read (a descriptor is a few KiB; scripts are small).
MAX_FILE_BYTES = 16 * 1024 * 1024
SCRIPTS_DIR = "scripts"

@dataclass
class VnfPackageContent:
    """What the NFVO knows of one VNF's package: the scripts it ships or the link to clone."""

    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    scripts: list[Script] = field(default_factory=list)
    scripts_link: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    #: the file names the VNF's scripts will have on the VM (for validation); None = unknown
    script_names: set[str] | None = None

    def to_package(self) -> VNFPackage:
        if self.scripts_link:
            return VNFPackage(id=self.id, name=self.name, scriptsLink=self.scripts_link)
        return VNFPackage(id=self.id, name=self.name, scripts=[s.model_copy() for s in self.scripts])


# -- small helpers ------------------------------------------------------------------------------

def dotted_path(prefix: str, parts: tuple[Any, ...]) -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def pydantic_problems(exc: ValidationError, prefix: str) -> list[str]:
    return [f"{dotted_path(prefix, tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]


def read_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DescriptorError([f"{where}: not valid JSON: {exc}"]) from exc


def read_file(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DescriptorError([f"{path}: {size} bytes is more than the {MAX_FILE_BYTES} allowed"])
    return path.read_bytes()


def is_remote_url(location: str) -> bool:
    """A location this machine is assumed not to reach: any URL but ``file:``, or scp-like
    ``user@host:path``."""
    if location.startswith("file:"):
        return False
    return "://" in location or re.match(r"^[\w.-]+@[\w.-]+:", location) is not None


def local_path_of(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(location[len("file://"):])
    if location.startswith("file:"):
        return Path(location[len("file:"):])
    return None


def folder_scripts(folder: Path, where: str, problems: list[str]) -> list[Script]:
    scripts: list[Script] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder)
        if len(rel.parts) > 1:
            problems.append(f"{where}: {SCRIPTS_DIR}/{rel.as_posix()}: the scripts folder must be flat "
                            "(a file in a sub-folder cannot be saved on the VM)")
            continue
        scripts.append(Script(name=rel.name, payload=read_file(path)))
    return scripts


# -- VNF packages -------------------------------------------------------------------------------

@dataclass
class _RawPackage:
    """The files of a package, from a tar or a folder."""

    origin: str
    metadata: bytes | None = None
    vnfd: tuple[str, bytes] | None = None
    scripts: list[tuple[str, bytes]] = field(default_factory=list)
    nested: list[str] = field(default_factory=list)
    folder: Path | None = None          # the package folder (None for a tar)


def _raw_from_tar(path: Path) -> _RawPackage:
    raw = _RawPackage(origin=str(path))
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = PurePosixPath(member.name.lstrip("/"))
                parts = [p for p in name.parts if p not in (".", "")]
                if not parts or not member.isfile() or parts[-1].startswith("._") or ".." in parts:
                    continue
                if member.size > MAX_FILE_BYTES:
                    raise DescriptorError([f"{path}: {'/'.join(parts)} is larger than {MAX_FILE_BYTES} bytes"])
                fh = tar.extractfile(member)
                data = fh.read() if fh is not None else b""
                _classify(raw, parts, data)
    except (tarfile.TarError, OSError) as exc:
        raise DescriptorError([f"{path}: not a readable tar archive: {exc}"]) from exc
    return raw


def _raw_from_folder(folder: Path) -> _RawPackage:
    raw = _RawPackage(origin=str(folder), folder=folder)
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("._"):
            continue
        parts = list(path.relative_to(folder).parts)
        if parts[0] == ".git":
            continue
        if len(parts) > 1 and parts[0] != SCRIPTS_DIR:
            continue
        _classify(raw, parts, read_file(path))
    return raw


def _classify(raw: _RawPackage, parts: list[str], data: bytes) -> None:
    if len(parts) == 1:
        if parts[0].lower() == "metadata.yaml":
            raw.metadata = data
        elif parts[0].lower().endswith(".json"):
            raw.vnfd = (parts[0], data)          # the last one wins, as in the reference
    elif parts[0] == SCRIPTS_DIR:
        if len(parts) == 2:
            raw.scripts.append((parts[1], data))
        else:
            raw.nested.append("/".join(parts))


def _images_from_metadata(meta: dict[str, Any]) -> list[str]:
    images = meta.get("images")
    if isinstance(images, dict) and images:
        return [str(k) for k in images]
    legacy = meta.get("image")
    if isinstance(legacy, dict):
        names = legacy.get("names") or legacy.get("ids") or []
        if isinstance(names, list):
            return [str(n) for n in names]
    return []


def load_package(path: Path, state_dir: Path) -> tuple[VirtualNetworkFunctionDescriptor | None, VnfPackageContent,
                                                        list[str]]:
    """Read one VNF package (tar or folder). Returns the VNFD (None when unusable), the package
    content, and the problems found (each naming the package)."""
    raw = _raw_from_tar(path) if path.is_file() else _raw_from_folder(path)
    where = f"package {raw.origin}"
    problems: list[str] = []
    meta: dict[str, Any] = {}
    if raw.metadata is None:
        problems.append(f"{where}: no Metadata.yaml")
    else:
        try:
            loaded = yaml.safe_load(raw.metadata.decode("utf-8-sig"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{where}: Metadata.yaml is not valid YAML: {exc}")
            loaded = {}
        if isinstance(loaded, dict):
            meta = loaded
        elif loaded is not None:
            problems.append(f"{where}: Metadata.yaml must be a mapping, not {type(loaded).__name__}")
    for nested in raw.nested:
        problems.append(f"{where}: {nested}: the scripts folder must be flat "
                        "(a file in a sub-folder cannot be saved on the VM)")
    vnfd: VirtualNetworkFunctionDescriptor | None = None
    if raw.vnfd is None:
        problems.append(f"{where}: no VNFD (a *.json file at the top of the package)")
    else:
        fname, data = raw.vnfd
        try:
            doc = read_json(data, f"{where}: {fname}")
        except DescriptorError as exc:
            problems.extend(exc.problems)
            doc = None
        if doc is not None and not isinstance(doc, dict):
            problems.append(f"{where}: {fname} must hold a JSON object (the VNFD)")
        elif doc is not None:
            try:
                vnfd = VirtualNetworkFunctionDescriptor.model_validate(doc)
            except ValidationError as exc:
                problems.extend(pydantic_problems(exc, f"{where}: {fname}"))
    name = str(meta.get("name") or (vnfd.name if vnfd else "") or path.stem)
    if raw.metadata is not None and not meta.get("name"):
        problems.append(f"{where}: Metadata.yaml has no 'name'")
    content = VnfPackageContent(name=name, metadata=meta, origin=raw.origin)
    if vnfd is not None:
        if meta.get("name") and vnfd.name != meta.get("name"):
            problems.append(f"{where}: Metadata.yaml name {meta.get('name')!r} differs from the VNFD name "
                            f"{vnfd.name!r}")
        vendor = meta.get("vendor", meta.get("provider"))
        if vendor is not None and vnfd.vendor is not None and str(vendor) != vnfd.vendor:
            problems.append(f"{where}: Metadata.yaml vendor/provider {vendor!r} differs from the VNFD vendor "
                            f"{vnfd.vendor!r}")
        if vnfd.vnfPackageLocation:
            problems.append(f"{where}: the VNFD of a package must not have vnfPackageLocation "
                            f"({vnfd.vnfPackageLocation!r}); use scripts-link in Metadata.yaml")
        images = _images_from_metadata(meta)
        for vdu in vnfd.vdu or []:
            if not vdu.vm_image and images:
                vdu.vm_image = list(images)
    link = meta.get("scripts-link")
    script_files = [Script(name=n, payload=d) for n, d in raw.scripts]
    if isinstance(link, str) and link.strip():
        link = link.strip()
        if not is_remote_url(link):
            local = local_path_of(link) or Path(link)
            if not local.exists():
                problems.append(f"{where}: scripts-link {link!r} does not exist")
            content.scripts_link = link if "://" in link or link.startswith("file:") else local.resolve().as_uri()
            content.script_names = names_in(local)
        elif raw.scripts:
            content.scripts_link = _serve(raw, state_dir, where, problems)
            content.script_names = {n for n, _ in raw.scripts}
        else:
            problems.append(f"{where}: scripts-link {link!r} is not reachable from this machine and the package "
                            f"has no {SCRIPTS_DIR}/ folder to use instead")
            content.script_names = None
    else:
        content.scripts = script_files
        content.script_names = {s.name for s in script_files}
    return vnfd, content, problems


def names_in(local: Path) -> set[str] | None:
    if local.is_dir() and not (local / "HEAD").is_file():
        return {p.name for p in local.iterdir() if p.is_file()}
    return None


def _serve(raw: _RawPackage, state_dir: Path, where: str, problems: list[str]) -> str | None:
    """Serve a package's scripts (folder or tar content) as a local git repository."""
    try:
        if raw.folder is not None:
            return serve_folder(raw.folder / SCRIPTS_DIR, state_dir)
        tmp_root = state_dir / "unpacked"
        tmp_root.mkdir(parents=True, exist_ok=True)
        folder = tmp_root / f"{Path(raw.origin).stem}-{uuid.uuid4().hex[:8]}" / SCRIPTS_DIR
        folder.mkdir(parents=True)
        for name, data in raw.scripts:
            (folder / name).write_bytes(data)
        return serve_folder(folder, state_dir)
    except (GitRepoError, OSError) as exc:
        problems.append(f"{where}: cannot serve {SCRIPTS_DIR}/ as a local git repository: {exc}")
        return None


def is_package_folder(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() and p.name.lower() == "metadata.yaml" for p in path.iterdir())


def find_packages(folder: Path) -> list[Path]:
    found = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if (child.is_file() and child.suffix.lower() == ".tar") or is_package_folder(child):
            found.append(child)
    return found


def package_tar_bytes(folder: Path) -> bytes:
    """A package folder as tar bytes (``Metadata.yaml``, ``*.json``, ``scripts/``): handy for tests
    and for shipping an example as a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if ".git" in rel.parts:
                continue
            tar.add(path, arcname=rel.as_posix(), recursive=False)
    return buf.getvalue()
