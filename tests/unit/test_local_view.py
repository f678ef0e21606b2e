"""The live view of `gvnfm up` as the user sees it: a state rendered to text."""

from __future__ import annotations

from rich.console import Console

from gvnfm.local.view import render
from gvnfm.orchestrator.records import ErrorInfo, NetworkServiceRecord, VnfcProgress, VnfrState


def text_of(nsr: NetworkServiceRecord | None) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(render(nsr, "gvnfm up svc"))
    return console.export_text()


def vnfr(name: str, *hosts: tuple[str, str, str]) -> dict[str, object]:
    return {"name": name, "vdu": [{"vnfc_instance": [
        {"hostname": h, "state": st, "ips": [{"netName": "private", "ip": ip}]} for h, st, ip in hosts]}]}


def nsr_with_a_failure() -> NetworkServiceRecord:
    nsr = NetworkServiceRecord(name="chain", status="ERROR")
    nsr.vnfrs["db"] = VnfrState(name="db", type="db", status="ACTIVE", hosts=["db-1111"],
                                vnfr=vnfr("db", ("db-1111", "ACTIVE", "127.1.0.2")),
                                progress={"db-1111": VnfcProgress(hostname="db-1111", event="START",
                                                                  script="start.sh", status="done")})
    nsr.vnfrs["app"] = VnfrState(name="app", type="app", status="ERROR", action="MODIFY", hosts=["app-2222"],
                                 vnfr=vnfr("app", ("app-2222", "ERROR", "127.1.0.3")),
                                 progress={"app-2222": VnfcProgress(hostname="app-2222", event="CONFIGURE",
                                                                    script="db_configure.sh", status="failed")})
    nsr.add_error(ErrorInfo(vnfr="app", action="MODIFY", message="script failed", hostname="app-2222",
                            event="CONFIGURE", script="db_configure.sh", stderr="no [db] host given\n"))
    return nsr


def test_loading() -> None:
    text = text_of(None)
    assert "gvnfm up svc" in text and "loading…" in text


def test_every_vnf_and_vnfc_with_its_state_event_script_and_step() -> None:
    lines = text_of(nsr_with_a_failure()).splitlines()

    def row(*cells: str) -> str:
        found = [line for line in lines if all(c in line for c in cells)]
        assert len(found) == 1, (cells, lines)
        return found[0]

    row("db (db)", "ACTIVE")
    row("db-1111", "private=127.1.0.2", "ACTIVE", "START", "start.sh", "done")
    row("app (app)", "ERROR", "MODIFY")
    row("app-2222", "private=127.1.0.3", "ERROR", "CONFIGURE", "db_configure.sh", "failed")
    error = row("error app-2222", "CONFIGURE", "db_configure.sh", "no [db] host given")   # markup shown as is
    after = lines[lines.index(error) + 1]
    assert after.strip("│┃╵└┘─ ").strip() != "", "no blank row from the final newline of stderr"
    assert any("network service chain — ERROR" in line for line in lines)


def test_terminated_vnfcs_show_terminated() -> None:
    nsr = nsr_with_a_failure()
    for state in nsr.vnfrs.values():
        state.status = "TERMINATED"
        for inst in state.vnfr["vdu"][0]["vnfc_instance"]:   # type: ignore[index]
            inst["state"] = "TERMINATED"
    nsr.status = "TERMINATED"
    text = text_of(nsr)
    assert "ACTIVE" not in text and text.count("TERMINATED") == 5
