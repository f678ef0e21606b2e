"""The loader: NSD files, package folders and tars, folders of packages, scripts served as a git repo."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from gvnfm.orchestrator.dependencies import merge_dependencies
from gvnfm.orchestrator.errors import DescriptorError
from gvnfm.orchestrator.loader import load_service, package_tar_bytes
from gvnfm.orchestrator.validation import validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def vnfd(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name, "vendor": "acme", "version": "1.0", "type": type_, "endpoint": "generic",
        "vdu": [{"vm_image": ["default"], "scale_in_out": 2,
                 "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}],
        "virtual_link": [{"name": "private"}],
        "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]}],
    }
    data.update(extra)
    return data


def write_package(folder: Path, name: str, type_: str, scripts: dict[str, str] | None = None,
                  metadata: dict[str, Any] | None = None, **extra: Any) -> Path:
    folder.mkdir(parents=True)
    meta = {"name": name, "vendor": "acme", "version": "1.0", "nfvo_version": "6.0.1", "vim_types": ["local"]}
    meta.update(metadata or {})
    (folder / "Metadata.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in meta.items()) + "\n")
    (folder / "vnfd.json").write_text(json.dumps(vnfd(name, type_, **extra)))
    (folder / "scripts").mkdir()
    for sname, text in (scripts if scripts is not None else {"install.sh": "#!/bin/bash\necho hi\n"}).items():
        (folder / "scripts" / sname).write_text(text)
    return folder


def make_tar(folder: Path, target: Path, prefix: str = "") -> Path:
    with tarfile.open(target, "w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=prefix + path.relative_to(folder).as_posix(), recursive=False)
    return target


def git_files(url: str, into: Path) -> dict[str, str]:
    subprocess.run(["git", "clone", "-q", url, str(into)], check=True, capture_output=True, timeout=60)
    return {p.name: p.read_text() for p in into.iterdir() if p.is_file()}


def test_nsd_file_with_inline_vnfds_ships_the_scripts_folder(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "install.sh").write_text("#!/bin/bash\necho install\n")
    nsd = {"name": "svc", "vendor": "acme", "version": "1", "vld": [{"name": "private"}],
           "vnfd": [vnfd("a", "ta"), vnfd("b", "tb", requires={"a": {"parameters": ["private"]}})]}
    (tmp_path / "service.json").write_text(json.dumps(nsd))
    bundle = load_service(tmp_path / "service.json", tmp_path / "state")
    assert [v.name for v in bundle.nsd.vnfd] == ["a", "b"]
    assert bundle.problems == []
    for name in ("a", "b"):
        package = bundle.packages[name]
        assert package.scripts_link is None
        assert [(s.name, s.payload) for s in package.scripts] == [("install.sh", b"#!/bin/bash\necho install\n")]
        wire = package.to_package().to_wire()
        assert wire["scripts"][0]["payload"][:2] == [35, 33]      # Java byte[]: "#!"
    validate(bundle)


def test_unreachable_package_location_is_served_as_a_local_git_repository(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "iperf", tmp_path / "iperf")
    bundle = load_service(tmp_path / "iperf", tmp_path / "state")
    validate(bundle)
    links = {p.scripts_link for p in bundle.packages.values()}
    assert len(links) == 1                           # one repository for the folder, shared
    link = links.pop()
    assert link is not None and link.startswith("file://")
    assert Path(link[len("file://"):]).is_relative_to((tmp_path / "state").resolve())
    files = git_files(link, tmp_path / "clone")
    original = {p.name: p.read_text() for p in (EXAMPLES / "iperf" / "scripts").iterdir()}
    assert files == original
    # the same content gives the same repository; changed content a new one
    assert load_service(tmp_path / "iperf", tmp_path / "state").packages["iperf-client"].scripts_link == link
    (tmp_path / "iperf" / "scripts" / "install.sh").write_text("#!/bin/bash\necho changed\n")
    changed = load_service(tmp_path / "iperf", tmp_path / "state").packages["iperf-client"].scripts_link
    assert changed != link
    assert git_files(changed or "", tmp_path / "clone2")["install.sh"] == "#!/bin/bash\necho changed\n"


def test_iperf_example_is_the_shared_one_unchanged() -> None:
    shared = ROOT / "tests" / "fixtures" / "openbaton" / "iperf"    # Open Baton's files, as published
    scripts = sorted(p.name for p in (shared / "scripts").iterdir())
    assert scripts == ["install-srv.sh", "install.sh", "server_configure.sh"]
    assert json.loads((EXAMPLES / "iperf" / "nsd.json").read_text()) == json.loads((shared / "nsd.json").read_text())
    for script in (shared / "scripts").iterdir():
        assert (EXAMPLES / "iperf" / "scripts" / script.name).read_bytes() == script.read_bytes()


def test_file_url_location_is_used_as_is(tmp_path: Path) -> None:
    scripts = tmp_path / "myscripts"
    scripts.mkdir()
    (scripts / "install.sh").write_text("echo\n")
    nsd = {"name": "svc", "vnfd": [vnfd("a", "ta", vnfPackageLocation=scripts.as_uri())]}
    (tmp_path / "nsd.json").write_text(json.dumps(nsd))
    bundle = load_service(tmp_path, tmp_path / "state")
    assert bundle.packages["a"].scripts_link == scripts.as_uri()
    assert bundle.packages["a"].script_names == {"install.sh"}
    validate(bundle)


def test_package_folder_is_a_one_vnf_service(tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "pkg", "solo", "st", scripts={"install.sh": "echo 1\n", "start.sh": "echo 2\n"})
    bundle = load_service(pkg, tmp_path / "state")
    assert bundle.nsd.name == "solo"
    assert [v.name for v in bundle.nsd.vnfd] == ["solo"]
    assert sorted(s.name for s in bundle.packages["solo"].scripts) == ["install.sh", "start.sh"]
    assert bundle.packages["solo"].metadata["vim_types"] == ["local"]
    assert bundle.places == [f'vnfd[0] "solo" (package {pkg})']
    validate(bundle)


@pytest.mark.parametrize("prefix", ["", "./"])
def test_package_tar_is_a_one_vnf_service(tmp_path: Path, prefix: str) -> None:
    pkg = write_package(tmp_path / "pkg", "solo", "st", scripts={"install.sh": "echo tar\n"})
    tar = make_tar(pkg, tmp_path / "solo.tar", prefix)
    bundle = load_service(tar, tmp_path / "state")
    assert [v.name for v in bundle.nsd.vnfd] == ["solo"]
    assert [(s.name, s.payload) for s in bundle.packages["solo"].scripts] == [("install.sh", b"echo tar\n")]
    validate(bundle)


def test_package_tar_bytes_round_trip(tmp_path: Path) -> None:
    (tmp_path / "db.tar").write_bytes(package_tar_bytes(EXAMPLES / "chain" / "db"))
    bundle = load_service(tmp_path / "db.tar", tmp_path / "state")
    assert bundle.nsd.vnfd[0].name == "db"
    assert "install.sh" in (bundle.packages["db"].script_names or set())


def test_folder_with_nsd_referencing_tars_and_folders(tmp_path: Path) -> None:
    svc = tmp_path / "svc"
    write_package(svc / "a", "a", "ta")
    pkg_b = write_package(tmp_path / "src-b", "b", "tb", requires={"a": {"parameters": ["private"]}})
    make_tar(pkg_b, svc / "b.tar")
    (svc / "nsd.json").write_text(json.dumps({
        "name": "svc", "vld": [{"name": "private"}],
        "vnfd": [{"id": "acme/b/1.0"}, {"id": "acme/a/1.0"}]}))
    bundle = load_service(svc, tmp_path / "state")
    assert [v.name for v in bundle.nsd.vnfd] == ["b", "a"]
    assert bundle.places[0].startswith('vnfd[0] "b" (package ') and bundle.places[0].endswith("b.tar)")
    validate(bundle)
    edges = merge_dependencies(bundle.nsd.vnfd, bundle.nsd.vnf_dependency or [])
    assert [(e.source, e.target, e.parameters) for e in edges] == [("a", "b", ("private",))]


def test_unresolved_reference_names_the_entry(tmp_path: Path) -> None:
    write_package(tmp_path / "a", "a", "ta")
    (tmp_path / "nsd.json").write_text(json.dumps({"name": "svc", "vnfd": [{"id": "acme/a/1.0"},
                                                                            {"id": "acme/missing/1.0"}]}))
    bundle = load_service(tmp_path, tmp_path / "state")
    with pytest.raises(DescriptorError) as err:
        validate(bundle)
    assert err.value.problems == [
        f"{tmp_path / 'nsd.json'}: nsd.vnfd[1]: id 'acme/missing/1.0' matches no VNF package in {tmp_path} "
        "(expected <vendor>/<name>/<version>; packages found: acme/a/1.0)"]


def test_folder_of_packages_without_nsd(tmp_path: Path) -> None:
    write_package(tmp_path / "x", "x", "tx")
    write_package(tmp_path / "y", "y", "ty", requires={"x": {"parameters": ["private", "hostname"]}})
    bundle = load_service(tmp_path, tmp_path / "state")
    assert bundle.nsd.name == tmp_path.name
    assert sorted(v.name or "" for v in bundle.nsd.vnfd) == ["x", "y"]
    validate(bundle)


def test_chain_example_loads_as_folder_and_as_tars(tmp_path: Path) -> None:
    folder = load_service(EXAMPLES / "chain", tmp_path / "state")
    validate(folder)
    subprocess.run([str(EXAMPLES / "chain" / "build-tars.sh"), str(tmp_path / "dist")], check=True,
                   capture_output=True, timeout=60)
    tars = load_service(tmp_path / "dist", tmp_path / "state")
    validate(tars)
    for bundle in (folder, tars):
        assert [v.name for v in bundle.nsd.vnfd] == ["db", "app", "web"]
        edges = merge_dependencies(bundle.nsd.vnfd, bundle.nsd.vnf_dependency or [])
        assert {(e.source, e.target): e.parameters for e in edges} == {
            ("db", "app"): ("private", "hostname", "port", "schema"),   # requires + legacy NSD entry merged
            ("app", "web"): ("private", "hostname", "port")}
        app = next(v for v in bundle.nsd.vnfd if v.name == "app")
        assert len(app.vdu[0].vnfc or []) == 2 and (app.vdu[0].scale_in_out or 0) >= 3
    assert ({s.name: s.payload for s in folder.packages["web"].scripts}
            == {s.name: s.payload for s in tars.packages["web"].scripts})


@pytest.mark.parametrize("source,target", [("a", "b"), ({"name": "a"}, {"name": "b"})])
def test_vnf_dependency_string_and_legacy_object_forms(tmp_path: Path, source: Any, target: Any) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "install.sh").write_text("echo\n")
    (tmp_path / "nsd.json").write_text(json.dumps({
        "name": "svc", "vnfd": [vnfd("a", "ta"), vnfd("b", "tb")],
        "vnf_dependency": [{"source": source, "target": target, "parameters": ["private"]},
                           {"source": source, "target": target, "parameters": ["hostname", "private"]}]}))
    bundle = load_service(tmp_path, tmp_path / "state")
    validate(bundle)
    edges = merge_dependencies(bundle.nsd.vnfd, bundle.nsd.vnf_dependency or [])
    assert [(e.source, e.target, e.parameters) for e in edges] == [("a", "b", ("private", "hostname"))]


def test_lone_vnfd_json_is_a_one_vnf_service(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "install.sh").write_text("echo\n")
    (tmp_path / "vnfd.json").write_text(json.dumps(vnfd("lone", "tl")))
    bundle = load_service(tmp_path / "vnfd.json", tmp_path / "state")
    assert [v.name for v in bundle.nsd.vnfd] == ["lone"]
    validate(bundle)


def test_metadata_images_fill_empty_vm_image(tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", "p", "tp", metadata={"image": {"upload": "false", "names": ["ubuntu-16.04"]}},
                        vdu=[{"vm_image": [], "scale_in_out": 1,
                              "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}])
    bundle = load_service(pkg, tmp_path / "state")
    assert bundle.nsd.vnfd[0].vdu[0].vm_image == ["ubuntu-16.04"]


def test_package_with_remote_scripts_link_serves_its_scripts_folder(tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", "p", "tp", metadata={"scripts-link": "https://example.invalid/s.git"},
                        scripts={"install.sh": "echo from-package\n"})
    tar = make_tar(pkg, tmp_path / "p.tar")
    bundle = load_service(tar, tmp_path / "state")
    link = bundle.packages["p"].scripts_link
    assert link and link.startswith("file://")
    assert bundle.packages["p"].scripts == []
    assert git_files(link, tmp_path / "clone") == {"install.sh": "echo from-package\n"}
    validate(bundle)


def test_package_problems_are_collected(tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", "p", "tp", metadata={"name": "other", "vendor": "someone"},
                        vnfPackageLocation="https://x.invalid/s.git")
    (pkg / "scripts" / "sub").mkdir()
    (pkg / "scripts" / "sub" / "x.sh").write_text("echo\n")
    bundle = load_service(pkg, tmp_path / "state")
    where = f"package {pkg}"
    assert bundle.problems == [
        f"{where}: scripts/sub/x.sh: the scripts folder must be flat (a file in a sub-folder cannot be saved on "
        "the VM)",
        f"{where}: Metadata.yaml name 'other' differs from the VNFD name 'p'",
        f"{where}: Metadata.yaml vendor/provider 'someone' differs from the VNFD vendor 'acme'",
        f"{where}: the VNFD of a package must not have vnfPackageLocation ('https://x.invalid/s.git'); use "
        "scripts-link in Metadata.yaml"]
    with pytest.raises(DescriptorError) as err:
        validate(bundle)
    assert err.value.problems[:4] == bundle.problems


def test_package_without_metadata_or_vnfd(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"echo\n"
        info = tarfile.TarInfo("scripts/install.sh")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "broken.tar").write_bytes(buf.getvalue())
    with pytest.raises(DescriptorError) as err:
        load_service(tmp_path / "broken.tar", tmp_path / "state")
    assert err.value.problems == [f"package {tmp_path / 'broken.tar'}: no Metadata.yaml",
                                  f"package {tmp_path / 'broken.tar'}: no VNFD (a *.json file at the top of the "
                                  "package)"]


@pytest.mark.parametrize("content,expected", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object (the NSD)"),
    ('{"name": "x"}', "nsd.vnfd must be a list of VNFDs (it is missing)"),
    ('{"name": "x", "vnfd": [{"name": "a", "vdu": "nope"}]}', 'vnfd[0] "a": vdu: Input should be a valid list'),
    ('{"name": "x", "vnfd": [], "vnf_dependency": [{"target": "a"}]}',
     "nsd.vnf_dependency[0].source: Field required"),
])
def test_unreadable_nsd_raises_with_the_place(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "nsd.json").write_text(content)
    with pytest.raises(DescriptorError) as err:
        load_service(tmp_path, tmp_path / "state")
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match="no such file or folder"):
        load_service(tmp_path / "nope", tmp_path / "state")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DescriptorError, match=r"no nsd\.json, no Metadata\.yaml and no VNF package"):
        load_service(tmp_path / "empty", tmp_path / "state")
