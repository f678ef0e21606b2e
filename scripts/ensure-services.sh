#!/usr/bin/env bash
# Make sure the real services of the test suite are there (idempotent; Debian 12, with or without
# systemd; root is needed only to install or start something):
#   - RabbitMQ on 127.0.0.1:5672 (guest/guest) with its management API on 127.0.0.1:15672 (the tests
#     make a virtual host each through it, so they need no rabbitmqctl, which only root may run; the VNFM makes a broker user per EMS host through it),
#   - RabbitMQ's STOMP plugin on 61613,
#   - ActiveMQ (Debian's package, instance main) with a STOMP connector on 127.0.0.1:61614,
#   - PostgreSQL on 127.0.0.1:5432 (user postgres, trust authentication from 127.0.0.1),
#   - git;
#   - iperf and screen (for the iperf example's end-to-end tests), ip (iproute2: the netns tests),
#     and the shellcheck program (the test of these scripts).
#   - chromium and chromium-driver (the web page's tests in a real browser).
# A service that already listens is left alone. Missing packages are installed with apt-get (one
# `apt-get update` at most; a failing apt-get is reported as such). Prints one line per service;
# exits non-zero if one cannot be provided.
set -euo pipefail
# shellcheck source=scripts/rabbitmq-node.sh
. "$(dirname "${BASH_SOURCE[0]}")/rabbitmq-node.sh"

WAIT_SECONDS=${WAIT_SECONDS:-60}
APT_UPDATED=0
FAILED=0

say() { printf '%-10s %s\n' "$1:" "$2"; }

listening() {   # listening HOST PORT
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

wait_listening() {   # wait_listening PORT: until something listens on 127.0.0.1:PORT, at most WAIT_SECONDS
    local deadline=$((SECONDS + WAIT_SECONDS))
    until listening 127.0.0.1 "$1"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 1
    done
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "$1" "$2, but installing/starting it needs root: re-run as root"
        return 1
    fi
}

# apt_install PACKAGE...: install them, or say what apt-get said and fail. Callers must check the
# status (`apt_install x || return 1`): `set -e` does not apply inside a function called with `||`.
apt_install() {
    local out
    if [ "$APT_UPDATED" -eq 0 ]; then
        if ! out=$(apt-get update -qq 2>&1); then
            say apt "apt-get update failed: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
            return 1
        fi
        APT_UPDATED=1
    fi
    if ! out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" 2>&1); then
        say apt "apt-get install $* failed: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
        return 1
    fi
}

systemd_running() {
    [ -d /run/systemd/system ]
}

# -- RabbitMQ --------------------------------------------------------------------------------------
RABBIT_ENVCONF=/etc/rabbitmq/rabbitmq-env.conf

rabbitmq_installed() {
    command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ]
}

ensure_rabbitmq() {
    export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"
    if listening 127.0.0.1 5672; then
        say rabbitmq "already listening on 127.0.0.1:5672, left alone"
        ensure_rabbitmq_management
        return
    fi
    need_root rabbitmq "nothing on 127.0.0.1:5672" || return 1
    local did=""
    if ! rabbitmq_installed; then
        apt_install rabbitmq-server || return 1
        did="installed rabbitmq-server, "
    fi
    # On a machine with systemd the package has just started rabbit@<host name>: talk to that node.
    # Elsewhere, a node name and address that work without DNS for the host name (containers, CI).
    local node write
    read -r node write < <(rabbit_node_here "$RABBIT_ENVCONF")
    if [ "$write" = yes ]; then
        mkdir -p "$(dirname "$RABBIT_ENVCONF")"
        printf 'NODENAME=%s\nNODE_IP_ADDRESS=127.0.0.1\n' "$node" >> "$RABBIT_ENVCONF"
    fi
    if ! listening 127.0.0.1 5672; then
        if systemd_running; then
            if ! systemctl start rabbitmq-server >/dev/null 2>&1; then
                say rabbitmq "${did}but 'systemctl start rabbitmq-server' failed (see journalctl -u rabbitmq-server)"
                return 1
            fi
        else
            rabbitmq-server -detached >/dev/null 2>&1 || true
        fi
        did="${did}started $node, "
    fi
    local deadline=$((SECONDS + WAIT_SECONDS))
    until rabbitmqctl -n "$node" -q await_startup --timeout 5 >/dev/null 2>&1 && listening 127.0.0.1 5672; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say rabbitmq "${did}but $node is not up after ${WAIT_SECONDS} s (see /var/log/rabbitmq/)"
            return 1
        fi
        sleep 1
    done
    say rabbitmq "${did}now listening on 127.0.0.1:5672 (node $node)"
    ensure_rabbitmq_management
}

# The management plugin (HTTP API on 127.0.0.1:15672): the tests add and delete virtual hosts and
# users through it. Enabling a plugin does not restart the node.
ensure_rabbitmq_management() {
    if listening 127.0.0.1 15672; then
        say rabbitmq "management API listening on 127.0.0.1:15672"
        return 0
    fi
    need_root rabbitmq "management API not on 127.0.0.1:15672 (rabbitmq-plugins enable rabbitmq_management)" \
        || return 1
    local node write
    read -r node write < <(rabbit_node_here "$RABBIT_ENVCONF")
    if ! rabbitmq-plugins -n "$node" -q enable rabbitmq_management >/dev/null 2>&1; then
        say rabbitmq "'rabbitmq-plugins -n $node enable rabbitmq_management' failed"
        return 1
    fi
    if ! wait_listening 15672; then
        say rabbitmq "enabled rabbitmq_management on $node, but nothing listens on 127.0.0.1:15672"
        return 1
    fi
    say rabbitmq "enabled rabbitmq_management on $node: API on 127.0.0.1:15672"
}

# The STOMP plugin (the STOMP transport's tests; listens on 61613). Enabling it restarts nothing.
ensure_rabbitmq_stomp() {
    export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"
    if listening 127.0.0.1 61613; then
        say rabbit-stomp "already listening on 127.0.0.1:61613, left alone"
        return 0
    fi
    need_root rabbit-stomp "nothing on 127.0.0.1:61613" || return 1
    local node write
    read -r node write < <(rabbit_node_here "$RABBIT_ENVCONF")
    if ! rabbitmq-plugins -n "$node" -q enable rabbitmq_stomp >/dev/null 2>&1; then
        say rabbit-stomp "'rabbitmq-plugins -n $node enable rabbitmq_stomp' failed"
        return 1
    fi
    if ! wait_listening 61613; then
        say rabbit-stomp "enabled rabbitmq_stomp, but nothing listens on 61613 after ${WAIT_SECONDS} s"
        return 1
    fi
    say rabbit-stomp "enabled rabbitmq_stomp, now listening on 127.0.0.1:61613"
}

# -- ActiveMQ (the STOMP transport's tests; its STOMP connector on 61614: RabbitMQ's STOMP plugin has 61613)
ACTIVEMQ_STOMP_PORT=${ACTIVEMQ_STOMP_PORT:-61614}
ensure_activemq() {
    if listening 127.0.0.1 "$ACTIVEMQ_STOMP_PORT"; then
        say activemq "already listening on 127.0.0.1:$ACTIVEMQ_STOMP_PORT, left alone"
        return 0
    fi
    need_root activemq "nothing on 127.0.0.1:$ACTIVEMQ_STOMP_PORT" || return 1
    local did=""
    if [ ! -f /usr/share/activemq/bin/activemq.jar ]; then
        apt_install activemq || return 1
        did="installed activemq, "
    fi
    # Debian's instance "main": add the STOMP connector, a smaller heap, and enable it
    local inst=/etc/activemq/instances-available/main
    if ! grep -q 'name="stomp"' "$inst/activemq.xml"; then
        sed -i "s#\(<transportConnector name=\"openwire\"[^>]*/>\)#\1\n            <transportConnector name=\"stomp\" uri=\"stomp://127.0.0.1:$ACTIVEMQ_STOMP_PORT\"/>#" \
            "$inst/activemq.xml"
        did="${did}added its STOMP connector, "
    fi
    # its data directory writable by the activemq user (the package leaves it to root), a smaller heap
    mkdir -p /var/lib/activemq/main/data /var/lib/activemq/main/tmp
    chown -R activemq /var/lib/activemq/main
    [ -f "$inst/options" ] || printf '%s\n' 'export ACTIVEMQ_BASE=/var/lib/activemq/main' \
        'export ACTIVEMQ_DATA=/var/lib/activemq/main/data' 'export ACTIVEMQ_TMP=/var/lib/activemq/main/tmp' \
        'export ACTIVEMQ_OUT=/var/lib/activemq/main/data/console.log' \
        'ACTIVEMQ_OPTS="-Xms64M -Xmx384M -Dorg.apache.activemq.UseDedicatedTaskRunner=false"' > "$inst/options"
    ln -sfn "$inst" /etc/activemq/instances-enabled/main
    # the package's init script runs it with start-stop-daemon: it works with or without systemd
    /etc/init.d/activemq start >/dev/null 2>&1 || true
    did="${did}started it, "
    if ! wait_listening "$ACTIVEMQ_STOMP_PORT"; then
        say activemq "${did}but it is not up after ${WAIT_SECONDS} s (see /var/lib/activemq/main/data/)"
        return 1
    fi
    say activemq "${did}now listening on 127.0.0.1:$ACTIVEMQ_STOMP_PORT (STOMP)"
}

# -- PostgreSQL ------------------------------------------------------------------------------------
pg_trust_ok() {
    command -v psql >/dev/null 2>&1 || return 2
    PGPASSWORD='' PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p 5432 -U postgres -w -d postgres -Atqc 'select 1' \
        >/dev/null 2>&1
}

ensure_postgres() {
    if listening 127.0.0.1 5432; then
        local auth=0
        pg_trust_ok || auth=$?
        case $auth in
            0) say postgres "already listening on 127.0.0.1:5432 (trust auth for postgres works), left alone" ;;
            2) say postgres "already listening on 127.0.0.1:5432 (psql absent: auth not checked), left alone" ;;
            *) say postgres "already listening on 127.0.0.1:5432, left alone, BUT trust auth for user postgres fails"
               return 1 ;;
        esac
        return 0
    fi
    need_root postgres "nothing on 127.0.0.1:5432" || return 1
    local did=""
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        apt_install postgresql || return 1
        did="installed postgresql, "
    fi
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    if [ ! -d "/etc/postgresql/$version/main" ]; then
        pg_createcluster "$version" main >/dev/null
        did="${did}created cluster $version/main, "
    fi
    if ! listening 127.0.0.1 5432; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        did="${did}started $version/main, "
    fi
    if ! wait_listening 5432; then
        say postgres "${did}but it is not up after ${WAIT_SECONDS} s (see /var/log/postgresql/)"
        return 1
    fi
    if ! pg_trust_ok; then
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        # First matching line wins: put the trust line before the others.
        sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        did="${did}enabled trust auth on 127.0.0.1, "
        local tries=0
        until pg_trust_ok; do
            tries=$((tries + 1))
            if [ "$tries" -ge 10 ]; then
                say postgres "${did}but user postgres still cannot log in on 127.0.0.1:5432"
                return 1
            fi
            sleep 1
        done
    fi
    say postgres "${did}now listening on 127.0.0.1:5432 (trust auth for postgres works)"
}

# -- git -------------------------------------------------------------------------------------------
ensure_git() {
    if command -v git >/dev/null 2>&1; then
        say git "present ($(git --version))"
        return 0
    fi
    need_root git "missing" || return 1
    apt_install git || return 1
    say git "installed ($(git --version))"
}

# -- programs the tests run: iperf and screen (the iperf example's scripts, deployed as Open Baton
# publishes it), ip (the netns VIM's tests), shellcheck (the test of these scripts) -----------------
ensure_tools() {
    local missing=() packages=() prog pkg
    for pair in iperf:iperf screen:screen ip:iproute2 shellcheck:shellcheck; do
        prog=${pair%%:*} pkg=${pair#*:}
        if ! command -v "$prog" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$prog" ] && [ ! -x "/sbin/$prog" ]; then
            missing+=("$prog")
            packages+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say tools "iperf, screen, ip and shellcheck present"
        return 0
    fi
    need_root tools "missing: ${missing[*]}" || return 1
    apt_install "${packages[@]}" || return 1
    say tools "installed ${packages[*]}"
}

# -- headless Chromium and its WebDriver (the web page's browser tests) ------------------------------
ensure_browser() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        say browser "chromium and chromedriver present"
        return 0
    fi
    need_root browser "missing: chromium or chromedriver" || return 1
    apt_install chromium chromium-driver || return 1
    say browser "installed chromium and chromium-driver"
}

# (tests source this file with ENSURE_SERVICES_SOURCED=1 to run one function in a fake environment)
if [ "${ENSURE_SERVICES_SOURCED:-0}" = 1 ]; then return 0; fi
ensure_rabbitmq || FAILED=1
ensure_rabbitmq_stomp || FAILED=1
ensure_activemq || FAILED=1
ensure_postgres || FAILED=1
ensure_git || FAILED=1
ensure_tools || FAILED=1
ensure_browser || FAILED=1
exit "$FAILED"
