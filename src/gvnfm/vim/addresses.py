"""Address plans of the local VIMs.

- ``process``: every host gets, on every virtual link, its own loopback address. Linux routes the whole
  127.0.0.0/8 to ``lo``, so any 127.x.y.z can be bound without configuration. Virtual link number
  ``n`` (1, 2, ... in order of first use) is 127.n.0.0/16 (n > 0 keeps clear of 127.0.0.1 and
  Debian's 127.0.1.1); host ``k`` on it is 127.n.(k // 254).(k % 254 + 1), from k = 1 on.
- ``netns``: every virtual link gets a /24 of 198.18.0.0/15 (the benchmarking range, RFC 2544):
  index ``i`` (0..511) is 198.(18 + i // 256).(i % 256).0/24; the bridge holds .1 (the hosts'
  default gateway and the address they reach the broker at), hosts get .2 to .254.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from gvnfm.vim.base import VimError

BENCHMARK_NET = ipaddress.IPv4Network("198.18.0.0/15")
SUBNETS = BENCHMARK_NET.num_addresses // 256          # 512 /24s
LOOPBACK_LINKS = 254                                   # 127.1 .. 127.254
LOOPBACK_HOSTS_PER_LINK = 254 * 256 - 2


def subnet(index: int) -> ipaddress.IPv4Network:
    if not 0 <= index < SUBNETS:
        raise ValueError(f"subnet index {index} outside 0..{SUBNETS - 1}")
    base = int(BENCHMARK_NET.network_address) + index * 256
    return ipaddress.IPv4Network((base, 24))


def gateway(net: ipaddress.IPv4Network) -> str:
    return str(net.network_address + 1)


def subnet_index(net: ipaddress.IPv4Network) -> int:
    return (int(net.network_address) - int(BENCHMARK_NET.network_address)) // 256


def loopback(link: int, host: int) -> str:
    if not 1 <= link <= LOOPBACK_LINKS:
        raise ValueError(f"loopback link number {link} outside 1..{LOOPBACK_LINKS}")
    if not 1 <= host <= LOOPBACK_HOSTS_PER_LINK:
        raise ValueError(f"loopback host number {host} outside 1..{LOOPBACK_HOSTS_PER_LINK}")
    return f"127.{link}.{host // 254}.{host % 254 + 1}"


@dataclass
class SlotPool:
    """Lowest-free allocation of the numbers ``first..last`` (host numbers on one link)."""

    first: int
    last: int
    used: set[int] = field(default_factory=set)

    def take(self) -> int:
        for n in range(self.first, self.last + 1):
            if n not in self.used:
                self.used.add(n)
                return n
        raise VimError(f"no free address left ({self.last - self.first + 1} in use)")

    def give_back(self, n: int) -> None:
        self.used.discard(n)


class LoopbackPlan:
    """The ``process`` VIM's addresses: one 127.n/16 per virtual link, one address per host and link."""

    def __init__(self) -> None:
        self._links: dict[str, int] = {}
        self._pools: dict[str, SlotPool] = {}
        self._taken: dict[tuple[str, str], int] = {}   # (hostname, link) -> host number

    def link_number(self, network: str) -> int:
        if network not in self._links:
            if len(self._links) >= LOOPBACK_LINKS:
                raise VimError(f"too many virtual links (at most {LOOPBACK_LINKS}) for loopback addresses")
            self._links[network] = len(self._links) + 1
            self._pools[network] = SlotPool(1, LOOPBACK_HOSTS_PER_LINK)
        return self._links[network]

    def allocate(self, hostname: str, networks: list[str]) -> dict[str, str]:
        ips: dict[str, str] = {}
        try:
            for network in networks:
                if network in ips:
                    continue
                link = self.link_number(network)
                number = self._pools[network].take()
                self._taken[(hostname, network)] = number
                ips[network] = loopback(link, number)
        except VimError:
            self.release(hostname)
            raise
        return ips

    def release(self, hostname: str) -> None:
        for key in [k for k in self._taken if k[0] == hostname]:
            self._pools[key[1]].give_back(self._taken.pop(key))


class SubnetHosts:
    """Host addresses .2 .. .254 of one /24."""

    def __init__(self, net: ipaddress.IPv4Network) -> None:
        self.net = net
        self._pool = SlotPool(2, 254)

    def take(self) -> str:
        try:
            return str(self.net.network_address + self._pool.take())
        except VimError:
            raise VimError(f"virtual link subnet {self.net} is full (253 hosts)") from None

    def give_back(self, address: str) -> None:
        self._pool.give_back(int(ipaddress.IPv4Address(address)) - int(self.net.network_address))
