#!/usr/bin/env bash
# Make sure the real services of the test suite are there (idempotent; run as root on Debian 12):
#   - RabbitMQ on 127.0.0.1:5672 (guest/guest), its management API on 127.0.0.1:15672 (the VNFM makes
#     a broker user per EMS host through it),
#   - PostgreSQL on 127.0.0.1:5432 (user postgres, trust authentication from 127.0.0.1),
#   - git;
#   - iperf and screen (for the iperf example's end-to-end tests).
# A service that already listens is left alone. Missing packages are installed with apt-get (one
# `apt-get update` at most). Prints one line per service; exits non-zero if one cannot be provided.
set -euo pipefail

WAIT_SECONDS=${WAIT_SECONDS:-60}
APT_UPDATED=0
FAILED=0

say() { printf '%-10s %s\n' "$1:" "$2"; }

listening() {   # listening HOST PORT
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "$1" "$2, but installing/starting it needs root: re-run as root"
        return 1
    fi
}

apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# -- RabbitMQ --------------------------------------------------------------------------------------
ensure_rabbitmq() {
    if listening 127.0.0.1 5672; then
        say rabbitmq "already listening on 127.0.0.1:5672, left alone"
        return 0
    fi
    need_root rabbitmq "nothing on 127.0.0.1:5672" || return 1
    local did=""
    if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
        apt_install rabbitmq-server
        did="installed rabbitmq-server, "
    fi
    export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"
    # A node name and address that work without DNS for the host name (containers, CI machines).
    local envconf=/etc/rabbitmq/rabbitmq-env.conf
    mkdir -p /etc/rabbitmq
    if ! grep -qs '^NODENAME=' "$envconf"; then
        printf 'NODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\n' >> "$envconf"
    fi
    if ! listening 127.0.0.1 5672; then   # the package's post-install script may have started it
        rabbitmq-server -detached >/dev/null 2>&1 || true
        did="${did}started it, "
    fi
    local deadline=$((SECONDS + WAIT_SECONDS))
    until rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1 && listening 127.0.0.1 5672; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say rabbitmq "${did}but it is not up after ${WAIT_SECONDS} s (see /var/log/rabbitmq/)"
            return 1
        fi
        sleep 1
    done
    say rabbitmq "${did}now listening on 127.0.0.1:5672"
}

# The management HTTP API (plugin rabbitmq_management): the VNFM creates each EMS host's own broker user
# through it, and the tests check those users' permissions on the real broker.
ensure_rabbitmq_management() {
    if listening 127.0.0.1 15672; then
        say rabbitmq "management API already on 127.0.0.1:15672"
        return 0
    fi
    need_root rabbitmq "no management API on 127.0.0.1:15672" || return 1
    export PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
    local deadline=$((SECONDS + WAIT_SECONDS))
    until listening 127.0.0.1 15672; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say rabbitmq "rabbitmq_management enabled, but 15672 is not up after ${WAIT_SECONDS} s"
            return 1
        fi
        sleep 1
    done
    say rabbitmq "enabled rabbitmq_management, API on 127.0.0.1:15672"
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
        apt_install postgresql
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
    local deadline=$((SECONDS + WAIT_SECONDS))
    until listening 127.0.0.1 5432; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say postgres "${did}but it is not up after ${WAIT_SECONDS} s (see /var/log/postgresql/)"
            return 1
        fi
        sleep 1
    done
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
    apt_install git
    say git "installed ($(git --version))"
}

# -- programs the iperf example's scripts use (its tests deploy it as Open Baton publishes it) -------
ensure_tools() {
    local missing=()
    for prog in iperf screen; do
        command -v "$prog" >/dev/null 2>&1 || missing+=("$prog")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say tools "iperf and screen present"
        return 0
    fi
    need_root tools "missing: ${missing[*]}" || return 1
    apt_install "${missing[@]}"
    say tools "installed ${missing[*]}"
}

ensure_rabbitmq || FAILED=1
ensure_rabbitmq_management || FAILED=1
ensure_postgres || FAILED=1
ensure_git || FAILED=1
ensure_tools || FAILED=1
exit "$FAILED"
