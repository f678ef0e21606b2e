"""Deploy and tear down a network service through a ``LocalNfvo``, in the reference NFVO's order
(protocol §4 step 5):

1. validate the service and check that it fits the VIM as a whole (nothing is sent otherwise);
2. INSTANTIATE every VNF concurrently;
3. a VNF that is no dependency target gets START as soon as it is instantiated; a target gets MODIFY
   (with its VNFRecordDependency) as soon as it and all its sources are instantiated (INITIALIZED —
   not configured, so mutual dependencies A<->B deploy), then START.

Teardown sends RELEASE_RESOURCES to every VNFR that has hosts (failed ones too), then removes the hosts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gvnfm.orchestrator.dependencies import sources_of
from gvnfm.orchestrator.errors import Conflict, DeployFailed, NotEnoughResources, OrchestratorError
from gvnfm.orchestrator.lifecycle import Event, apply, resumed
from gvnfm.orchestrator.loader import ServiceBundle
from gvnfm.orchestrator.nfvo import LocalNfvo
from gvnfm.orchestrator.records import ACTIVE, ERROR, TERMINATED, ErrorInfo, NetworkServiceRecord
from gvnfm.orchestrator.validation import validate

log = logging.getLogger(__name__)


class SourceFailed(OrchestratorError):
    """A target cannot be configured because one of its sources failed."""


class Deployment:
    """Deploy/teardown/resume on top of a started ``LocalNfvo``. ``image_exists`` checks VDU images
    (default: the VIM's ``image_exists`` method when it has one, else ``gvnfm.vim.images.image_exists``)."""

    def __init__(self, nfvo: LocalNfvo, *, image_exists: Callable[[str], bool] | None = None) -> None:
        self.nfvo = nfvo
        self.image_exists: Callable[[str], bool] = image_exists or _default_image_check(nfvo)

    # -- deploy ------------------------------------------------------------------------------------
    async def deploy(self, bundle: ServiceBundle) -> NetworkServiceRecord:
        """Raises DescriptorError (nothing deployed), NoVnfm (no registered VNFM of a VNFD's type: nothing
        deployed), NotEnoughResources (nothing deployed; the NSR is recorded in ERROR) or DeployFailed
        (``.nsr`` to tear down)."""
        validate(bundle, self.image_exists)
        for vnfd in bundle.nsd.vnfd:   # routed as the Java NFVO does: refused at once if no VNFM can take it
            self.nfvo.registry.require(vnfd.endpoint)
        nsr = self.nfvo.onboard(bundle)
        try:
            self.nfvo.reserve(nsr)
        except NotEnoughResources as exc:
            nsr.status = ERROR
            nsr.errors.append(ErrorInfo(vnfr="", action="GRANT_OPERATION", message=str(exc)))
            self.nfvo.emit(nsr, None, action="DEPLOY", state=ERROR, message=str(exc))
            log.error("event=deploy_refused nsr=%s error=%r", nsr.name, str(exc))
            raise
        log.info("event=deploy_start nsr=%s id=%s vnfrs=%s", nsr.name, nsr.id, ",".join(nsr.vnfrs))
        try:
            await self.advance(nsr, list(nsr.vnfrs))
        finally:
            self.nfvo.resources.release_nsr(nsr.id)
        return nsr

    async def advance(self, nsr: NetworkServiceRecord, names: list[str]) -> None:
        """Bring the VNFRs ``names`` to ACTIVE, each step as soon as its conditions hold: INSTANTIATE
        (unless instantiated), MODIFY for a target once all its sources are instantiated (unless
        configured), START (unless ACTIVE). Raises DeployFailed listing the failures."""
        loop = asyncio.get_running_loop()
        edges = self.nfvo.edges(nsr)
        ready: dict[str, asyncio.Future[None]] = {}
        for name, state in nsr.vnfrs.items():
            fut: asyncio.Future[None] = loop.create_future()
            ready[name] = fut
            if name not in names:
                if state.instantiated and state.status != ERROR:
                    fut.set_result(None)
                else:
                    fut.set_exception(SourceFailed(f"VNFR {name} is {state.status}"))

        async def one(name: str) -> None:
            state = nsr.vnfr(name)
            try:
                if not state.instantiated:
                    await self.nfvo.instantiate(nsr, name)
            except BaseException:
                ready[name].set_exception(SourceFailed(f"VNFR {name} failed"))
                raise
            ready[name].set_result(None)
            sources = sources_of(edges, name)
            if sources and not state.configured:
                for edge in sources:
                    try:
                        await asyncio.shield(ready[edge.source])
                    except SourceFailed as exc:
                        raise SourceFailed(f"VNFR {name} not configured: its source {edge.source} did not "
                                           f"instantiate") from exc
                await self.nfvo.modify(nsr, name)
            if state.status != ACTIVE:
                await self.nfvo.start_vnf(nsr, name)

        try:
            results = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
        finally:        # cancelled (`gvnfm up` interrupted) too
            for fut in ready.values():
                if fut.done() and not fut.cancelled():
                    fut.exception()             # retrieved: no "never retrieved" warnings
        failures = [(n, r) for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)]
        nsr.refresh_status()
        for n, r in failures:
            if isinstance(r, asyncio.CancelledError):
                raise r
            if not isinstance(r, OrchestratorError):
                log.error("event=deploy_crashed vnfr=%s error=%r", n, r, exc_info=r)
                apply(nsr, n, Event.NFVO_FAILED, self.nfvo.emit,
                      error=ErrorInfo(vnfr=n, action=nsr.vnfr(n).action or "DEPLOY", message=repr(r)))
        if failures:
            nsr.refresh_status()
            # root causes first; "not configured because of a source" after them
            ordered = sorted(failures, key=lambda f: isinstance(f[1], SourceFailed))
            text = f"deployment of network service {nsr.name} failed: " + "; ".join(str(r) for _, r in ordered)
            log.error("event=deploy_failed nsr=%s error=%r", nsr.name, text)
            self.nfvo.emit(nsr, None, action="DEPLOY", state=ERROR, message=text)
            raise DeployFailed(text, nsr)
        log.info("event=deploy_done nsr=%s status=%s", nsr.name, nsr.status)
        self.nfvo.emit(nsr, None, action="DEPLOY", state=nsr.status)

    # -- resume ------------------------------------------------------------------------------------
    async def resume(self, nsr: NetworkServiceRecord, name: str, *, wait: bool = True) -> NetworkServiceRecord:
        """RESUME a failed VNFR, then continue as the NFVO does from the resumed action's answer:
        instantiated ⇒ MODIFY/START follow (for it and for targets that waited for it). ``wait=False``:
        Busy (409) if the VNFR is held by another operation; the follow-ups always wait their turn."""
        reply = await self.nfvo.resume(nsr, name, wait=wait)
        state = nsr.vnfr(name)
        event = resumed(reply.action, state.configured)
        if event in (Event.RESUMED_INSTANTIATE, Event.RESUMED_MODIFY, Event.RESUMED_START):
            state.instantiated = True
        if event is Event.RESUMED_MODIFY:
            state.configured = True
        if event is Event.RESUMED_RELEASE:
            await self.nfvo.remove_hosts(nsr, name)
        apply(nsr, name, event, self.nfvo.emit)
        if event is not Event.RESUMED_RELEASE:
            pending = [n for n, s in nsr.vnfrs.items() if s.status not in (ACTIVE, ERROR, TERMINATED)]
            if pending:
                await self.advance(nsr, pending)
        return nsr

    # -- restart -----------------------------------------------------------------------------------
    async def restart(self, nsr: NetworkServiceRecord, name: str, image: str | None = None, *,
                      wait: bool = True) -> NetworkServiceRecord:
        """Restart a VNFR (``LocalNfvo.restart``: hosts rebuilt, INSTANTIATE with the VNFR), then go on as
        the NFVO does after an INSTANTIATE: MODIFY when it is a dependency target, START. An unknown
        image is refused before anything changes."""
        if image is not None and not self.image_exists(image):
            raise Conflict(f"image {image!r} does not exist on the {self.nfvo.vim.name} VIM: nothing was restarted")
        await self.nfvo.restart(nsr, name, image, wait=wait)
        await self.advance(nsr, [name])
        return nsr

    # -- teardown ----------------------------------------------------------------------------------
    async def teardown(self, nsr: NetworkServiceRecord, *, timeout: float | None = None) -> NetworkServiceRecord:
        """RELEASE_RESOURCES to every VNFR with hosts (answers awaited at most ``timeout`` s, or until
        ``LocalNfvo.stop_waiting``; errors are recorded, teardown goes on), then remove every host; the NSR
        ends TERMINATED."""
        nsr.terminating = True
        self.nfvo.emit(nsr, None, action="TEARDOWN", state="started")
        names = [n for n, s in nsr.vnfrs.items() if s.hosts and s.vnfr is not None]
        results = await asyncio.gather(*(self.nfvo.release(nsr, n, timeout=timeout) for n in names),
                                       return_exceptions=True)
        for n, r in zip(names, results, strict=True):
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, BaseException):
                log.warning("event=release_failed vnfr=%s error=%r (hosts are removed anyway)", n, str(r))
        for name in nsr.vnfrs:
            await self.nfvo.remove_hosts(nsr, name)
        for name, state in nsr.vnfrs.items():
            apply(nsr, name, Event.TERMINATED, self.nfvo.emit)
            state.action = None
            if state.vnfr is not None:
                for vdu in state.vnfr.get("vdu") or []:     # its hosts are gone (a failure stays in nsr.errors)
                    for inst in vdu.get("vnfc_instance") or []:
                        inst["state"] = TERMINATED
        self.nfvo.resources.release_nsr(nsr.id)
        nsr.status = TERMINATED
        nsr.touch()
        log.info("event=teardown_done nsr=%s", nsr.name)
        self.nfvo.emit(nsr, None, action="TEARDOWN", state=TERMINATED)
        return nsr


def _default_image_check(nfvo: LocalNfvo) -> Callable[[str], bool]:
    checker = getattr(nfvo.vim, "image_exists", None)
    if callable(checker):
        return checker  # type: ignore[no-any-return]
    try:
        from gvnfm.vim.images import image_exists
    except ImportError:
        return lambda _image: True
    return image_exists


async def deploy(nfvo: LocalNfvo, bundle: ServiceBundle, *,
                 image_exists: Callable[[str], bool] | None = None) -> NetworkServiceRecord:
    return await Deployment(nfvo, image_exists=image_exists).deploy(bundle)


async def teardown(nfvo: LocalNfvo, nsr: NetworkServiceRecord, *, timeout: float | None = None) -> NetworkServiceRecord:
    return await Deployment(nfvo).teardown(nsr, timeout=timeout)
