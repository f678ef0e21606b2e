#!/usr/bin/env bash
# Install gvnfm's EMS agent on a VM or into a VM image: what the reference's user-data does (install
# the agent, write /etc/openbaton/openbaton-ems.properties, enable the unit), as one script.
#
#   install-ems.sh [--wheel FILE | --version V] [--broker-ip IP] [--broker-port P] [--username U]
#                  [--type ENDPOINT] [--hostname NAME] [--vhost VHOST] [--no-start] [--root DIR]
#
# The broker password comes from the EMS_PASSWORD variable (never from the command line: ps shows it).
# Without --broker-ip no properties file is written (an image: the user-data writes it at boot).
# --no-start enables the unit without starting it (images). --root installs under DIR (tests, chroots)
# and skips systemctl; with GVNFM_SKIP_PIP=1 the package is not installed (it is there already).
set -euo pipefail

WHEEL="" VERSION="" BROKER_IP="" BROKER_PORT=5672 USERNAME=admin TYPE=generic HOST="" VHOST="" START=1 ROOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheel) WHEEL=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --broker-ip) BROKER_IP=$2; shift 2 ;;
    --broker-port) BROKER_PORT=$2; shift 2 ;;
    --username) USERNAME=$2; shift 2 ;;
    --type) TYPE=$2; shift 2 ;;
    --hostname) HOST=$2; shift 2 ;;
    --vhost) VHOST=$2; shift 2 ;;
    --no-start) START=0; shift ;;
    --root) ROOT=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install-ems.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
UNIT_SRC="$HERE/../systemd/gvnfm-ems.service"
[ -f "$UNIT_SRC" ] || { echo "install-ems.sh: $UNIT_SRC is missing" >&2; exit 1; }
for value in "$BROKER_IP" "$USERNAME" "$TYPE" "$HOST" "$VHOST" "${EMS_PASSWORD:-}"; do
  case "$value" in *$'\n'*|*$'\r'*) echo "install-ems.sh: a value contains a line break" >&2; exit 2 ;; esac
done

if [ "${GVNFM_SKIP_PIP:-0}" != 1 ]; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then apt-get update -q && apt-get install -y -q python3-venv; fi
  fi
  python3 -m venv "$ROOT/opt/gvnfm"
  if [ -n "$WHEEL" ]; then
    "$ROOT/opt/gvnfm/bin/pip" install -q "$WHEEL"
  else
    "$ROOT/opt/gvnfm/bin/pip" install -q "gvnfm${VERSION:+==$VERSION}"
  fi
  mkdir -p "$ROOT/usr/local/bin"
  ln -sf /opt/gvnfm/bin/gvnfm "$ROOT/usr/local/bin/gvnfm"
fi

mkdir -p "$ROOT/etc/openbaton" "$ROOT/opt/openbaton/scripts" "$ROOT/var/log/openbaton" "$ROOT/etc/systemd/system"
if [ -n "$BROKER_IP" ]; then
  umask 077
  {
    echo "[ems]"
    echo "broker_ip=$BROKER_IP"
    echo "broker_port=$BROKER_PORT"
    echo "username=$USERNAME"
    echo "password=${EMS_PASSWORD:-openbaton}"
    echo "type=$TYPE"
    echo "hostname=${HOST:-$(hostname)}"
    if [ -n "$VHOST" ]; then echo "virtual_host=$VHOST"; fi
  } > "$ROOT/etc/openbaton/openbaton-ems.properties"
  umask 022
fi
install -m 0644 "$UNIT_SRC" "$ROOT/etc/systemd/system/gvnfm-ems.service"

if [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$START" = 1 ] && [ -f /etc/openbaton/openbaton-ems.properties ]; then
    systemctl enable --now gvnfm-ems.service
  else
    systemctl enable gvnfm-ems.service
  fi
elif [ -z "$ROOT" ]; then
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /etc/systemd/system/gvnfm-ems.service /etc/systemd/system/multi-user.target.wants/gvnfm-ems.service
fi
echo "gvnfm EMS installed${BROKER_IP:+ (broker $BROKER_IP:$BROKER_PORT, type $TYPE)}"
