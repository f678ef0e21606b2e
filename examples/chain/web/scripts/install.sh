#!/bin/bash
# INSTANTIATE of web: own configuration and address only.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname web
need_ipv4 private
need port 8000
need expected_backends
absent app_private
mkdir -p "$STATE" || fail "cannot create $STATE"
: > "$STATE/backends"
say "installed web front, will listen on $private:$port"
