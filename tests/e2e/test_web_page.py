"""The web page of `gvnfm up`, in a real browser (headless Chromium driven by selenium) against a real
`gvnfm up` process: the printed URL's token becomes an HttpOnly cookie, the chain example is drawn
(three VNFs, the dependencies with their parameters), scaling `app` out with the keyboard shows the
new VNFC live (no reload), a VNFC's script runs open with their output, a second scale-out beyond the
VDU's maximum is refused on the page, and a failed script shows its error and a Resume button that
brings the VNF to ACTIVE.

``GVNFM_SCREENSHOTS=docs/images`` saves the screenshots the README shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_up_owner_and_keep import ROOT, Up

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHAIN = ROOT / "examples" / "chain"
HANG_GUARD = 120.0          # a hang guard only: every wait returns as soon as its condition holds
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _binary(*names: str) -> str | None:
    return next((found for n in names if (found := shutil.which(n))), None)


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver = _binary("chromium", "chromium-browser"), _binary("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/ensure-services.sh installs them)")
    profile = tempfile.mkdtemp(prefix="gvnfm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1000"]:
        options.add_argument(flag)
    b = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield b
    finally:
        b.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(b: Any, condition: Any, what: str) -> Any:
    """``condition(driver)`` once true; an element replaced meanwhile (the page redrew it) is found again."""
    return WebDriverWait(b, HANG_GUARD, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: condition(d), message=f"page never showed {what}")


def click(b: Any, css: str) -> None:
    """Click the element ``css`` finds (again, if the page redrew it in between)."""
    wait(b, lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True, f"a clickable {css}")


def screenshot(b: Any, name: str, width: int = 1280) -> None:
    folder = os.environ.get("GVNFM_SCREENSHOTS")
    if not folder:
        return
    height = min(int(b.execute_script("return document.documentElement.scrollHeight")), 3000)
    b.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    b.save_screenshot(str(Path(folder) / name))
    b.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def page_url(up: Up) -> str:
    match = re.search(r"web page: (http://\S+/\?token=\S+)", up.wait_for("web page: "))
    assert match, up.lines
    return match[1]


def vnfcs(b: Any, vnf: str) -> dict[str, str]:
    """hostname -> state of one VNF's VNFCs as the picture shows them."""
    found: dict[str, str] = b.execute_script(
        "return Object.fromEntries([...document.querySelectorAll(arguments[0])]"
        ".map(a => [a.dataset.vnfc, a.dataset.state]))", f'svg g.vnf[data-vnf="{vnf}"] a[data-vnfc]')
    return found


def read(b: Any, css: str, attribute: str | None = None) -> list[str]:
    """Text (or an attribute) of every element ``css`` finds, read at once in the page (the page may redraw
    between two WebDriver calls, which makes element references stale)."""
    found: list[str] = b.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(e => arguments[1] ? e.getAttribute(arguments[1]) : e.textContent)", css, attribute)
    return found


def messages(b: Any) -> list[str]:
    return read(b, "#messages .message p")


def post(url: str, cookie: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={
        "Cookie": cookie, "Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=HANG_GUARD) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_chain_on_the_page_scaled_out_live(tmp_path: Path, browser: Any) -> None:
    up = Up(CHAIN, tmp_path / "state")
    try:
        url = page_url(up)
        up.wait_for("network service ACTIVE")
        base = url.split("/?token=")[0]

        # the token is exchanged for an HttpOnly, SameSite=Strict cookie and leaves the address bar
        browser.get(url)
        wait(browser, lambda d: d.current_url == base + "/", "the address without the token")
        (cookie,) = browser.get_cookies()
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict", cookie
        assert browser.execute_script("return document.cookie") == ""          # no script can read it

        # the picture: three VNFs, ACTIVE, and the dependencies labelled with their parameters
        wait(browser, lambda d: read(d, "svg g.vnf", "data-state") == ["ACTIVE"] * 3, "three ACTIVE VNFs")
        assert set(read(browser, "svg g.vnf", "data-vnf")) == {"db", "app", "web"}
        (db_app,) = read(browser, 'svg [data-edge="db->app"]')
        (app_web,) = read(browser, 'svg [data-edge="app->web"]')
        assert all(p in db_app for p in ("private", "hostname", "port", "schema")), db_app
        assert all(p in app_web for p in ("private", "hostname", "port")), app_web
        before = vnfcs(browser, "app")
        assert len(before) == 2 and set(before.values()) == {"ACTIVE"}, before
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr.op[data-op="START"][data-state="DONE"]'),
             "the finished START operations")
        screenshot(browser, "web-topology.png")

        # a cookie alone does not change anything: the page's header is needed too (CSRF)
        session = f"{cookie['name']}={cookie['value']}"
        scale = f"{base}/api/v1/ns-records/current/vnfrecords/app/scale-out"
        assert post(scale, session, {}) == 403
        assert post(scale, session, {"X-Gvnfm-Request": "page", "Origin": "http://evil.example"}) == 403

        # scale out `app` with the keyboard only: Tab to the button, Enter
        browser.execute_script("window.gvnfmSamePage = true")
        body = browser.find_element(By.TAG_NAME, "body")
        body.click()
        for _ in range(200):
            if browser.switch_to.active_element.get_attribute("id") == "act-scale-out-app":
                break
            browser.switch_to.active_element.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "act-scale-out-app"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait(browser, lambda d: any("scale out app: accepted" in m for m in messages(d)), "the accepted message")
        wait(browser, lambda d: len(vnfcs(d, "app")) == 3 and set(vnfcs(d, "app").values()) == {"ACTIVE"},
             "the new app VNFC, ACTIVE")
        assert browser.execute_script("return window.gvnfmSamePage") is True     # live: the page was not reloaded
        (new,) = set(vnfcs(browser, "app")) - set(before)
        scaled = 'tr.op[data-op="SCALE_OUT"][data-state="DONE"]'
        steps = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, scaled).get_attribute("innerHTML"),
                     "the SCALE_OUT operation, done")             # with its script runs: the new VNFC's, exit 0
        assert all(f"{new}: {event}" in steps for event in ("INSTANTIATE", "CONFIGURE", "START")), steps
        assert "exit 0" in steps and "FAILED" not in steps

        # open the new VNFC's script runs from the picture: newest first, with their output
        click(browser, f'svg a[data-vnfc="{new}"]')
        wait(browser, lambda d: d.find_element(By.ID, "runs").is_displayed()
             and d.find_elements(By.CSS_SELECTOR, "#runs tbody.run"), "the script runs panel")
        assert new in read(browser, "#runs-h")[0]
        events = read(browser, "#runs tbody.run", "data-event")
        assert events[-1] == "INSTANTIATE" and "START" in events and events.index("START") < events.index(
            "INSTANTIATE"), events
        assert set(read(browser, "#runs tbody.run", "data-exit")) == {"0"}
        install = '#runs tbody.run[data-event="INSTANTIATE"]'
        click(browser, f"{install} summary")
        out = f'{install} pre[data-stream="stdout"]'
        stdout = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, out).is_displayed() and read(d, out)[0],
                      "the install script's output")
        assert new in stdout, stdout
        screenshot(browser, "web-script-runs.png")

        # a fourth app VNFC is beyond scale_in_out (3): refused, and the page says why
        click(browser, "#act-scale-out-app")
        wait(browser, lambda d: any("scale out app refused (400)" in m and "scale_in_out" in m for m in messages(d)),
             "the refusal")
        assert len(vnfcs(browser, "app")) == 3

        # one operation at a time: while a script executed from the page runs on db, stopping db is refused
        # (409), as the CLI is; then the script ends and its output is shown
        release = tmp_path / "release"
        click(browser, "#exec-db summary")
        script = browser.find_element(By.ID, "exec-text-db")
        script.clear()
        script.send_keys(f'#!/bin/bash\nwhile [ ! -e "{release}" ]; do sleep 0.05; done\n'
                         'echo "released on $hostname"\n')
        click(browser, "#act-execute-db")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr.op[data-vnf="db"][data-state="RUNNING"]'),
             "db's running operation")
        click(browser, "#act-stop-db")
        wait(browser, lambda d: any("stop db refused (409)" in m for m in messages(d)), "the 409 refusal")
        screenshot(browser, "web-busy.png")
        release.touch()
        wait(browser, lambda d: any("execute on db: every VNFC exit 0" in m for m in messages(d)), "the script's end")
        (result,) = read(browser, "#exec-db .exec-result")
        assert "released on db-" in result, result

        # the other day-2 buttons: stop and start a VNF, heal a VNFC, scale the new app VNFC in
        click(browser, "#act-stop-web")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'svg g.vnf[data-vnf="web"][data-state="INACTIVE"]'),
             "web INACTIVE")
        click(browser, "#act-start-web")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'svg g.vnf[data-vnf="web"][data-state="ACTIVE"]'),
             "web ACTIVE again")
        (db,) = vnfcs(browser, "db")
        click(browser, f"#act-heal-db-{db}")
        healed = 'tr.op[data-op="HEAL"][data-vnf="db"][data-state="DONE"]'
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, healed), "db's HEAL, done")
        click(browser, f"#act-scale-in-app-{new}")
        wait(browser, lambda d: set(vnfcs(d, "app")) == set(before), "app back to its first two VNFCs")
        assert messages(browser) == [                                      # newest first
            f"scale in app (remove {new}): accepted", f"heal {db}: accepted", "start web: accepted",
            "stop web: accepted"], messages(browser)

        # messages can be dismissed, the runs panel closed with Escape (focus back on its link)
        browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait(browser, lambda d: not d.find_element(By.ID, "runs").is_displayed(), "the runs panel closed")
        while messages(browser):
            click(browser, "#messages [data-dismiss]")

        # a phone's screen (390 CSS pixels): the picture stacks the VNFs, nothing is wider than the screen
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
        wait(browser, lambda d: d.execute_script("return window.innerWidth") == 390, "the narrow screen")
        wait(browser, lambda d: d.execute_script("return document.documentElement.scrollWidth") <= 390,
             "no horizontal scrolling")
        screenshot(browser, "web-narrow.png", width=390)
    finally:
        code = up.stop()
    assert code == 0, "".join(up.lines)
    token = url.split("?token=")[1]
    assert token not in (tmp_path / "state" / "up.log").read_text()          # printed once, never logged


FLAKY_INSTALL = """#!/bin/bash
# fails the first time (the marker does not exist yet), succeeds when run again
if [ ! -e "{marker}" ]; then
  touch "{marker}"
  echo "first run of install.sh fails on purpose" >&2
  exit 4
fi
echo "installed on $hostname"
"""


def flaky_service(folder: Path) -> Path:
    (folder / "scripts").mkdir(parents=True)
    install = folder / "scripts" / "install.sh"
    install.write_text(FLAKY_INSTALL.format(marker=folder / "second-run"))
    install.chmod(0o755)
    nsd = {"name": "flaky", "vendor": "test", "version": "1.0", "vld": [{"name": "private"}], "vnfd": [{
        "name": "flaky", "type": "flaky", "endpoint": "generic", "vendor": "test", "version": "1.0",
        "vdu": [{"vm_image": ["ubuntu-22.04"], "scale_in_out": 1,
                 "vnfc": [{"connection_point": [{"virtual_link_reference": "private"}]}]}],
        "deployment_flavour": [{"flavour_key": "m1.small"}],
        "lifecycle_event": [{"event": "INSTANTIATE", "lifecycle_events": ["install.sh"]}]}]}
    (folder / "nsd.json").write_text(json.dumps(nsd))
    return folder / "nsd.json"


def test_a_failed_script_is_shown_and_resumed_from_the_page(tmp_path: Path, browser: Any) -> None:
    up = Up(flaky_service(tmp_path / "flaky"), tmp_path / "state")
    try:
        url = page_url(up)
        up.wait_for("deployment failed")
        browser.get(url)
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'svg g.vnf[data-vnf="flaky"][data-state="ERROR"]'),
             "flaky in ERROR")
        (error,) = wait(browser, lambda d: read(d, '[data-error="flaky"]'), "the error")
        assert "INSTANTIATE" in error and "install.sh" in error, error
        assert "first run of install.sh fails on purpose" in error, error
        assert wait(browser, lambda d: d.find_element(By.ID, "act-resume-flaky").is_displayed(), "the Resume button")
        screenshot(browser, "web-error.png")

        click(browser, "#act-resume-flaky")
        wait(browser, lambda d: any("resume flaky: accepted" in m for m in messages(d)), "the accepted resume")
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'svg g.vnf[data-vnf="flaky"][data-state="ACTIVE"]'),
             "flaky ACTIVE after the resume")
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-error="flaky"]')
        (host,) = vnfcs(browser, "flaky")
        click(browser, f"#runs-link-{host}")
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs tbody.run")) == 2, "both install runs")
        assert read(browser, "#runs tbody.run", "data-exit") == ["0", "4"]      # newest first, the failure kept
    finally:
        up.stop()
