#!/bin/bash
# INSTANTIATE of app (on each of its VNFCs): own configuration and address only.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname app
need_ipv4 private
need port 8080
need workers 2
absent db_private
mkdir -p "$STATE" || fail "cannot create $STATE"
printf 'address=%s:%s\nworkers=%s\n' "$private" "$port" "$workers" > "$STATE/app.installed"
say "installed app with $workers workers, will listen on $private:$port"
