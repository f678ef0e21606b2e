"""`gvnfm up --endpoint X` routes as the Java NFVO does: the VNFD's endpoint is the VNFM *type*, sent to
the endpoint that the VNFM of that type registered. An NS with no VNFM of its type is refused at once,
naming the type and what is registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from gvnfm.local.runtime import LocalRuntime, RuntimeOptions
from gvnfm.orchestrator.loader import aload_service
from gvnfm.orchestrator.registry import NoVnfm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iperf"


async def test_up_with_another_endpoint_routes_generic_vnfds_to_it(tmp_path: Path) -> None:
    async with LocalRuntime(RuntimeOptions(state_dir=tmp_path, endpoint="my-vnfm", ems_start_timeout=60)) as rt:
        assert rt.nfvo is not None
        assert rt.nfvo.vnfms["generic"]["endpoint"] == "my-vnfm"       # a generic VNFM on queue my-vnfm
        nsr = await rt.deploy(EXAMPLE)
        assert nsr.status == "ACTIVE", nsr.errors
        await rt.teardown(nsr)


async def test_an_ns_without_a_vnfm_of_its_type_is_refused_at_once(tmp_path: Path) -> None:
    async with LocalRuntime(RuntimeOptions(state_dir=tmp_path, endpoint="my-vnfm")) as rt:
        assert rt.deployment is not None and rt.nfvo is not None
        bundle = await aload_service(EXAMPLE, tmp_path / "catalogue")
        bundle.nsd.vnfd[0].endpoint = "fancy"
        with pytest.raises(NoVnfm) as err:
            await rt.deployment.deploy(bundle)
        text = str(err.value)
        assert "no VNFM of type 'fancy'" in text and "type 'generic' (endpoint 'my-vnfm')" in text, text
        assert not rt.nfvo.nsrs and not rt.vim.hosts   # type: ignore[union-attr]   (nothing onboarded or created)
