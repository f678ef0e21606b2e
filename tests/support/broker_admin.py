"""Administration of the shared RabbitMQ for tests: virtual hosts, users, permissions.

Through the management HTTP API on 127.0.0.1:15672 (``scripts/ensure-services.sh`` enables the
``rabbitmq_management`` plugin) with the credentials of the test broker URL: it works for any user and
costs one HTTP request. When the API does not answer, ``rabbitmqctl`` is used, which Debian lets only
root run. When neither works the test fails (the suite's rule: a missing real service is a failure,
never a skip) naming what to do. Override the API's address with GVNFM_TEST_RABBIT_API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.support.services import AMQP_URL

API_URL = os.environ.get("GVNFM_TEST_RABBIT_API", "http://127.0.0.1:15672/api")


class BrokerAdmin:
    """add/delete virtual hosts and users, set permissions, on the shared broker."""

    def __init__(self, amqp_url: str = AMQP_URL, api_url: str = API_URL) -> None:
        parts = urlsplit(amqp_url)
        self.auth = (parts.username or "guest", parts.password or "guest")
        self.api_url = api_url.rstrip("/")
        self.how = self._pick()

    def _pick(self) -> str:
        try:
            response = httpx.get(f"{self.api_url}/whoami", auth=self.auth, timeout=10)
            if response.status_code == 200:
                return "api"
        except httpx.HTTPError:
            pass
        if os.geteuid() == 0 and (shutil.which("rabbitmqctl") or os.path.exists("/usr/sbin/rabbitmqctl")):
            return "rabbitmqctl"
        pytest.fail(f"cannot administer RabbitMQ: no management API at {self.api_url} and rabbitmqctl needs root "
                    "(run scripts/ensure-services.sh as root once: it enables rabbitmq_management)")

    # -- primitives -----------------------------------------------------------------------------------
    def _api(self, method: str, path: str, json: object | None = None, *, ok_missing: bool = False) -> None:
        response = httpx.request(method, f"{self.api_url}{path}", auth=self.auth, json=json, timeout=60)
        if ok_missing and response.status_code == 404:
            return
        if response.status_code >= 300:
            raise AssertionError(f"RabbitMQ API {method} {path}: {response.status_code} {response.text}")

    @staticmethod
    def _ctl(*args: str, check: bool = True) -> None:
        ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        subprocess.run([ctl, "-q", *args], check=check, capture_output=True, timeout=120)

    # -- operations -----------------------------------------------------------------------------------
    def add_vhost(self, vhost: str) -> None:
        if self.how == "api":
            self._api("PUT", f"/vhosts/{quote(vhost, safe='')}")
        else:
            self._ctl("add_vhost", vhost)

    def delete_vhost(self, vhost: str) -> None:
        if self.how == "api":
            self._api("DELETE", f"/vhosts/{quote(vhost, safe='')}", ok_missing=True)
        else:
            self._ctl("delete_vhost", vhost, check=False)

    def add_user(self, user: str, password: str) -> None:
        if self.how == "api":
            self._api("PUT", f"/users/{quote(user, safe='')}", {"password": password, "tags": ""})
        else:
            self._ctl("add_user", user, password)

    def delete_user(self, user: str) -> None:
        if self.how == "api":
            self._api("DELETE", f"/users/{quote(user, safe='')}", ok_missing=True)
        else:
            self._ctl("delete_user", user, check=False)

    def connection_users(self, vhost: str) -> list[str]:
        """The user of every client connection to ``vhost`` (the API lists a new connection once the
        broker's statistics have seen it: poll for it)."""
        if self.how == "api":
            response = httpx.get(f"{self.api_url}/vhosts/{quote(vhost, safe='')}/connections", auth=self.auth,
                                 timeout=60)
            response.raise_for_status()
            return [str(conn.get("user")) for conn in response.json()]
        ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        out = subprocess.run([ctl, "-q", "list_connections", "user", "vhost"], check=True, capture_output=True,
                             text=True, timeout=120).stdout
        return [cols[0] for cols in (line.split("\t") for line in out.splitlines()[1:]) if len(cols) == 2
                and cols[1] == vhost]

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        if self.how == "api":
            self._api("PUT", f"/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}",
                      {"configure": configure, "write": write, "read": read})
        else:
            self._ctl("set_permissions", "-p", vhost, user, configure, write, read)


@cache
def broker_admin() -> BrokerAdmin:
    return BrokerAdmin()
