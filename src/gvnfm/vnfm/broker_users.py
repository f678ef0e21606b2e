"""A broker user of its own for the EMS of every VNFC, through RabbitMQ's management HTTP API (plugin
``rabbitmq_management``), as the Open Baton NFVO creates VNFM users.

What a host user may do (``host_permissions``, decisions free of I/O), on the VNFM's virtual host:
- declare, bind and consume its own queue ``vnfm.<hostname>.actions`` and nothing else (configure,
  write, read on that queue only; binding keys on ``openbaton-exchange`` limited to its queue's name
  by a topic permission, so no binding to ``#``);
- publish on ``openbaton-exchange`` only with the routing key of its registration
  (``ems.<type>.register``) and of RPC replies (server-named ``amq.gen-…`` queues, which gvnfm's
  VNFM binds to the exchange under their own name); no write on the default exchange at all, so it
  cannot put a message in any other queue (the VNFM's endpoint, another host's actions);
- ``user_id`` of what it publishes is checked by the broker against the connection: the VNFM accepts
  a registration of a host only from that host's user, and a reply that came through the exchange
  only from the user of the host the command went to.

The NFVO gives every VNFC of one ALLOCATE_RESOURCES the same user-data (it only writes each VM's
hostname into it), so a user is made per user-data: for a SCALE_OUT and for a VNFR of one VNFC that is
one user per VNFC; the VNFCs one INSTANTIATE allocates together share one. Before the NFVO names the
hosts, a new user may use the queues ``vnfm.<vnfr name>-<digits>.actions`` (the NFVO's hostname
scheme); once the NFVO has answered, ``pin`` narrows it to the exact hostnames. The user's
permissions are the record of which hosts it serves (nothing else is stored): ``user_of`` reads them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

import httpx

from gvnfm.catalogue.queues import ems_actions_pattern, ems_actions_queue, ems_register_queue

if TYPE_CHECKING:
    from gvnfm.vnfm.settings import VnfmSettings

log = logging.getLogger("gvnfm.vnfm.broker_users")

USER_PREFIX = "gvnfm-ems-"
MANAGEMENT_PORT = 15672
#: A host found without a host user is looked up on the broker again at most this often (seconds).
MISS_REFRESH = 2.0


class ManagementError(Exception):
    """The management API refused a request or is unreachable."""


@dataclass(frozen=True)
class HostPermissions:
    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str


def hosts_pattern(hostnames: Iterable[str]) -> str:
    """A regex alternative of exact hostnames."""
    return "(" + "|".join(re.escape(h) for h in sorted(set(hostnames))) + ")"


_PATTERN_MARK = "-[0-9]+"


def vnfr_hosts_pattern(vnfr_name: str) -> str:
    """The hostnames the NFVO gives the VNFCs of a VNFR: ``<vnfr name>-<digits>``."""
    return re.escape(vnfr_name) + _PATTERN_MARK


def host_permissions(hosts: str, *, exchange: str, register_key: str) -> HostPermissions:
    """The permissions of a host user serving the hostnames matched by the regex ``hosts``."""
    queue = ems_actions_pattern(hosts)
    ex = re.escape(exchange)
    return HostPermissions(configure=f"^{queue}$", write=f"^({queue}|{ex})$", read=f"^({queue}|{ex})$",
                           topic_write=rf"^({re.escape(register_key)}|amq\.gen-[A-Za-z0-9_-]+)$",
                           topic_read=f"^{queue}$")


#: the name ``create`` gives a host user
_HOST_USER_NAME = re.compile(re.escape(USER_PREFIX) + "[0-9a-f]{16}")
#: the configure permission ``host_permissions`` writes: the hosts' regex is group 1
_HOST_QUEUE = re.compile(re.escape(f"^{ems_actions_pattern(chr(0))}$").replace(chr(0), "(.+)"))


def new_user_name() -> str:
    """A fresh host user name (what ``is_host_user`` recognises)."""
    return USER_PREFIX + secrets.token_hex(8)


def is_host_user(user: str, configure: str, write: str, read: str, *, exchange: str) -> bool:
    """Whether a user with these permissions on the virtual host is a host user this VNFM made: its name
    and its permissions are exactly what ``create`` gives one. Any other user, even one named
    ``gvnfm-ems-…`` (an operator's ``--ems-user``, the shared EMS user, with ``.*`` permissions), is
    no host's user: it does not decide whose replies are taken, and the VNFM never narrows or deletes it."""
    if _HOST_USER_NAME.fullmatch(user) is None:
        return False
    m = _HOST_QUEUE.fullmatch(configure)
    if m is None:
        return False
    expected = host_permissions(m.group(1), exchange=exchange, register_key="")
    return (configure, write, read) == (expected.configure, expected.write, expected.read)


def is_pinned(configure: str) -> bool:
    """Whether a host user's configure permission names exact hostnames (``pin``), not a VNFR's
    ``<vnfr name>-<digits>`` before the NFVO named them."""
    return _PATTERN_MARK not in configure


def leaked_users(record: dict[str, str], in_use: Iterable[str]) -> list[str]:
    """The host users of ``record`` (``{user: configure}``) nothing will ever pin or delete: not pinned
    to hosts, and named by no running operation (``in_use``): an operation names its user before the
    user exists, and pins it before it ends."""
    named = set(in_use)
    return sorted(u for u, configure in record.items() if not is_pinned(configure) and u not in named)


def serves(configure: str, hostname: str) -> bool:
    """Whether a host user whose configure permission is ``configure`` serves ``hostname``."""
    try:
        return re.fullmatch(configure, ems_actions_queue(hostname)) is not None
    except re.error:
        return False


def management_url(broker_url: str) -> str:
    """``http://user:password@host:15672`` for an ``amqp://user:password@host:port/vhost`` broker URL."""
    parts = urlsplit(broker_url)
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0] + "@" if len(netloc) == 2 else ""
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{userinfo}{host}:{MANAGEMENT_PORT}"


def broker_vhost(broker_url: str) -> str:
    path = urlsplit(broker_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


class BrokerUsers:
    """Creates, narrows and deletes host users; ``available`` is False (and one warning logged) when
    the management API cannot be used, and the VNFM then keeps the shared EMS credentials."""

    def __init__(self, url: str, *, vhost: str, exchange: str, register_key: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        host = parts.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        base = f"{parts.scheme or 'http'}://{host}:{parts.port or MANAGEMENT_PORT}{parts.path.rstrip('/')}"
        self._client = httpx.AsyncClient(base_url=base, auth=auth, timeout=timeout)
        self.vhost = vhost
        self.exchange = exchange
        self.register_key = register_key
        self.available = False
        self._lock = asyncio.Lock()
        self._served: dict[str, str] = {}     # user -> configure regex (cache of the broker's record)
        self._registered_as: dict[str, str] = {}   # hostname -> the host user its EMS registered as
        self._misses: dict[str, float] = {}   # hostname -> when the broker's record had no user for it

    async def close(self) -> None:
        await self._client.aclose()

    def _vh(self) -> str:
        return quote(self.vhost, safe="")

    async def _call(self, method: str, path: str, json: object = None) -> httpx.Response:
        try:
            response = await self._client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ManagementError(f"management API unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise ManagementError(f"management API {method} {path}: HTTP {response.status_code} "
                                  f"{response.text[:200]!r}")
        return response

    async def probe(self) -> bool:
        """True when the management API answers and this user may manage users (``administrator``)."""
        try:
            me = (await self._call("GET", "/api/whoami")).json()
        except (ManagementError, ValueError) as exc:
            self._warn(str(exc))
            return False
        tags = me.get("tags") or []
        tags = tags.split(",") if isinstance(tags, str) else tags
        if "administrator" not in tags:
            self._warn(f"the VNFM's broker user {me.get('name')!r} is not an administrator")
            return False
        self.available = True
        log.info("event=ems_host_users enabled=true vhost=%s", self.vhost)
        return True

    @staticmethod
    def _warn(why: str) -> None:
        log.warning("event=ems_host_users enabled=false reason=%r risk=%r", why,
                    "every EMS shares vnfm.ems.username/password: one VM's credentials can read every host's "
                    "commands and the NFVO's messages on the exchange, command other hosts and forge registrations")

    async def _set(self, user: str, hosts: str) -> None:
        perms = host_permissions(hosts, exchange=self.exchange, register_key=self.register_key)
        await self._call("PUT", f"/api/permissions/{self._vh()}/{quote(user, safe='')}",
                         {"configure": perms.configure, "write": perms.write, "read": perms.read})
        await self._call("PUT", f"/api/topic-permissions/{self._vh()}/{quote(user, safe='')}",
                         {"exchange": self.exchange, "write": perms.topic_write, "read": perms.topic_read})
        self._served[user] = perms.configure

    async def create(self, hosts: str, user: str | None = None) -> tuple[str, str]:
        """A host user serving the hostnames matched by ``hosts``: ``(name, password)``. ``user``: the name
        (``new_user_name``) an operation recorded before asking; made again if it exists, with a new password."""
        user, password = user or new_user_name(), secrets.token_urlsafe(24)
        await self._call("PUT", f"/api/users/{quote(user, safe='')}", {"password": password, "tags": ""})
        try:
            await self._set(user, hosts)
        except ManagementError:
            await self._call("DELETE", f"/api/users/{quote(user, safe='')}")
            raise
        log.info("event=ems_host_user_created user=%s hosts=%s", user, hosts)
        return user, password

    async def pin(self, user: str, hostnames: Iterable[str]) -> None:
        """Narrow ``user`` to exactly ``hostnames`` (deleted when there are none)."""
        names = sorted(set(hostnames))
        if not names:
            await self.delete(user)
            return
        await self._set(user, hosts_pattern(names))

    async def pin_unpinned(self, user: str, hostnames: Iterable[str]) -> None:
        """``pin``, only if ``user`` still serves a VNFR's hosts before they were named (a re-run after a
        worker died between the allocation and the pin; a user narrowed since, by a scale-in, stays so)."""
        configure = (await self._record()).get(user)
        if configure is not None and not is_pinned(configure):
            await self.pin(user, hostnames)

    async def delete(self, user: str) -> None:
        await self._call("DELETE", f"/api/users/{quote(user, safe='')}")
        self._served.pop(user, None)
        log.info("event=ems_host_user_deleted user=%s", user)

    async def sweep(self, in_use: Callable[[], Awaitable[Iterable[str]]]) -> list[str]:
        """Delete the host users a killed VNFM left unpinned (``leaked_users``); ``in_use``: the users
        the store's running operations name, read after the broker's list, so that a user made meanwhile
        is either not listed or named; only users of this VNFM's endpoint. Each is read again just before
        it is deleted: one pinned in between (its operation ended) is kept. Returns the deleted users."""
        listed = await self._record()
        # only this endpoint's (the topic permission names its register key): another VNFM type on the
        # virtual host has operations this store does not know
        mine = host_permissions("", exchange=self.exchange, register_key=self.register_key).topic_write
        topics = (await self._call("GET", f"/api/vhosts/{self._vh()}/topic-permissions")).json()
        ours = {str(r.get("user")) for r in topics if r.get("exchange") == self.exchange and r.get("write") == mine}
        listed = {u: c for u, c in listed.items() if u in ours}
        deleted: list[str] = []
        for user in leaked_users(listed, await in_use()):
            try:
                now = (await self._call("GET", f"/api/permissions/{self._vh()}/{quote(user, safe='')}")).json()
            except ManagementError:   # gone meanwhile (deleted by its operation), or the API failed: kept
                continue
            if str(now.get("configure", "")) != listed[user]:
                continue
            await self.delete(user)
            deleted.append(user)
        if deleted:
            log.warning("event=ems_host_users_swept count=%d users=%s (left unpinned by a VNFM that was killed)",
                        len(deleted), ",".join(deleted))
        return deleted

    async def _record(self) -> dict[str, str]:
        """Every host user of the virtual host with its configure regex (from the broker)."""
        rows = (await self._call("GET", f"/api/vhosts/{self._vh()}/permissions")).json()
        served = {str(r["user"]): str(r["configure"]) for r in rows
                  if is_host_user(str(r.get("user", "")), str(r.get("configure", "")), str(r.get("write", "")),
                                  str(r.get("read", "")), exchange=self.exchange)}
        self._served = served
        return served

    async def users_of(self, hostnames: Iterable[str]) -> dict[str, list[str]]:
        """``{user: [its hostnames among these]}`` for the host users serving any of ``hostnames``."""
        names = list(hostnames)
        found: dict[str, list[str]] = {}
        for user, configure in (await self._record()).items():
            mine = [h for h in names if serves(configure, h)]
            if mine:
                found[user] = mine
        return found

    async def user_of(self, hostname: str) -> str | None:
        """The host user serving ``hostname`` (cached; on a miss the broker is asked again, for the same
        host at most every ``MISS_REFRESH`` seconds: hosts with the shared credentials have none). A user
        another worker made is found: a host is asked about only after its user exists."""
        registered = self._registered_as.get(hostname)
        if registered is not None and registered in self._served and serves(self._served[registered], hostname):
            return registered
        for attempt in range(2):
            if attempt == 1:
                missed = self._misses.get(hostname)
                if missed is not None and time.monotonic() - missed < MISS_REFRESH:
                    break
            served = self._served if attempt == 0 else await self._record()
            found = [(user, configure) for user, configure in served.items() if serves(configure, hostname)]
            if found:
                self._misses.pop(hostname, None)
                # the user pinned to this very host first: a user made for a VNFR's hosts before the NFVO
                # named them (``<vnfr>-[0-9]+``) may be a dead run's that was never pinned nor deleted
                found.sort(key=lambda uc: _PATTERN_MARK in uc[1])
                return found[0][0]
        if len(self._misses) > 4096:
            self._misses.clear()
        self._misses[hostname] = time.monotonic()
        return None

    async def serves_host(self, user: str, hostname: str) -> bool:
        configure = self._served.get(user)
        if configure is None:
            configure = (await self._record()).get(user)
        return configure is not None and serves(configure, hostname)

    async def may_register(self, user_id: str | None, hostname: str) -> bool:
        """A registration of ``hostname`` published as ``user_id`` (RabbitMQ checked it): a host served by
        host users registers only as one of them; a host user registers only a host it serves; a host
        without one (shared credentials, today's behaviour) registers as any other user."""
        # always the broker's current record (another worker may have made or narrowed a user)
        record = await self._record()
        servers = [u for u, c in record.items() if serves(c, hostname)]
        if servers:
            if user_id in servers and user_id is not None:
                # the user the host's EMS really holds (from the user-data the NFVO used): its replies are
                # awaited from it, also when a worker that took the operation over made another for the host
                self._registered_as[hostname] = user_id
                return True
            return False
        return user_id not in record

    async def release(self, hostnames: Iterable[str], keep: Iterable[str] = ()) -> None:
        """Hosts gone (RELEASE_RESOURCES, SCALE_IN): a user serving only gone hosts is deleted; one that
        still serves some of ``keep`` (the VNFR's remaining hosts) is narrowed to those."""
        gone, kept = list(hostnames), list(keep)
        if not gone:
            return
        async with self._lock:
            for user, configure in list((await self._record()).items()):
                if any(serves(configure, h) for h in gone):
                    await self.pin(user, [h for h in kept if serves(configure, h)])


async def open_host_users(settings: VnfmSettings) -> BrokerUsers | None:
    """The VNFM's host users on its EMS broker, or None (one warning naming the risk) when they are
    switched off, the broker is not RabbitMQ, or its management API cannot be used."""
    url = settings.ems_broker_url()
    if not settings.ems_host_users or not url.startswith(("amqp://", "amqps://")):
        return None
    port = urlsplit(url).port
    if settings.broker_management_url is None and port not in (None, 5672, 5671):
        # a broker on another port: its management API is not at the default one (which may well be
        # another broker's); only an explicit URL is trusted
        BrokerUsers._warn(f"the broker listens on port {port}: set vnfm.rabbitmq.management.url")
        return None
    users = BrokerUsers(settings.broker_management_url or management_url(url), vhost=broker_vhost(url),
                        exchange=settings.exchange, register_key=ems_register_queue(settings.endpoint))
    if await users.probe():
        return users
    await users.close()
    return None
