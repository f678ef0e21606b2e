#!/bin/bash
# INSTANTIATE of db: sees its own configuration and its VNFC's address, nothing of other VNFs.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname db
need_ipv4 private
need port 5432
need schema orders
absent app_private
mkdir -p "$STATE" || fail "cannot create $STATE"
printf 'schema=%s\naddress=%s:%s\n' "$schema" "$private" "$port" > "$STATE/db.installed"
say "installed schema '$schema', will listen on $private:$port"
