#!/bin/bash
# gvnfm user-data: installs (when absent) and starts the gvnfm EMS on a fresh VM.
# The VNFM fills the "export X=" lines; the NFVO replaces "#Hostname=" with the VM's hostname.
export MONITORING_IP=
export TIMEZONE=
export BROKER_IP=
export BROKER_PORT=
export USERNAME=
export PASSWORD=
export EXCHANGE_NAME=
export EMS_HEARTBEAT=
export EMS_AUTODELETE=
export EMS_VERSION=
export GVNFM_VERSION=
export ENDPOINT=
export VIRTUAL_HOST=
export EMS_PROTOCOL=
export EMS_HOST_USER=
export EMS_BROKER_CA=
export #Hostname=

set -e
if ! command -v gvnfm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv git
  elif command -v yum >/dev/null 2>&1; then
    yum install -y python3 git
  else
    echo "unsupported operating system" >&2; exit 1
  fi
  python3 -m venv /opt/gvnfm && /opt/gvnfm/bin/pip install -q "gvnfm${GVNFM_VERSION:+==$GVNFM_VERSION}"
  ln -sf /opt/gvnfm/bin/gvnfm /usr/local/bin/gvnfm
fi
if [ -n "$TIMEZONE" ] && [ -f "/usr/share/zoneinfo/$TIMEZONE" ]; then
  cp "/usr/share/zoneinfo/$TIMEZONE" /etc/localtime
fi
mkdir -p /etc/openbaton /opt/openbaton/scripts /var/log/openbaton
umask 077
if [ -n "$EMS_BROKER_CA" ]; then   # the CA that signed a TLS EMS broker's certificate (base64 of its PEM)
  printf '%s' "$EMS_BROKER_CA" | base64 -d > /etc/openbaton/ems-broker-ca.pem
fi
cat > /etc/openbaton/openbaton-ems.properties <<PROPERTIES
[ems]
broker_ip=$BROKER_IP
broker_port=$BROKER_PORT
username=$USERNAME
password=$PASSWORD
exchange=$EXCHANGE_NAME
heartbeat=$EMS_HEARTBEAT
autodelete=$EMS_AUTODELETE
type=$ENDPOINT
hostname=$Hostname
${VIRTUAL_HOST:+virtual_host=$VIRTUAL_HOST}
${EMS_PROTOCOL:+protocol=$EMS_PROTOCOL}
${EMS_HOST_USER:+host_user=$EMS_HOST_USER}
${EMS_BROKER_CA:+broker_cafile=/etc/openbaton/ems-broker-ca.pem}
PROPERTIES
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  cat > /etc/systemd/system/gvnfm-ems.service <<UNIT
[Unit]
Description=gvnfm EMS
After=network-online.target
[Service]
ExecStart=/usr/local/bin/gvnfm ems --config /etc/openbaton/openbaton-ems.properties
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload && systemctl enable --now gvnfm-ems.service
else
  nohup gvnfm ems --config /etc/openbaton/openbaton-ems.properties >/var/log/openbaton/ems.out 2>&1 &
fi
