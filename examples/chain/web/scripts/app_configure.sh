#!/bin/bash
# CONFIGURE of web, type-prefixed "app_": runs once per app VNFC (twice at deploy time, once more
# for every app VNFC added by a scale-out), each time with that VNFC's values as $app_<key>.
# The runs on one VNFC must come one after the other (as the reference VNFM runs them): a run that
# finds another one in progress fails instead of losing a backend.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname web
need port 8000
need_ipv4 app_private
need_host app_hostname app
need app_port 8080
need_file "$STATE/backends" "INSTANTIATE (install.sh) did not run before CONFIGURE"
lock="$STATE/configure.lock"
if ! mkdir "$lock" 2>/dev/null; then
    fail "another $SCRIPT run (for $(cat "$lock/owner" 2>/dev/null || echo '?')) is in progress on this VNFC:" \
         "the runs for $app_hostname and it overlap, they must run one after the other"
fi
echo "$app_hostname" > "$lock/owner"
trap 'rm -rf "$lock"' EXIT
grep -v "^$app_hostname " "$STATE/backends" > "$STATE/backends.new" || true
echo "$app_hostname $app_private:$app_port" >> "$STATE/backends.new"
mv "$STATE/backends.new" "$STATE/backends"
# hold the lock a moment, so that an overlapping run is always noticed
sleep 0.3 2>/dev/null || sleep 1
say "backend $app_hostname at $app_private:$app_port added ($(wc -l < "$STATE/backends") in total)"
