#!/bin/bash
# SCALE_IN of web: an app instance was removed; $removing_<key> describe it.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname web
need_host removing_hostname app
need_ipv4 removing_private
need_file "$STATE/backends" "no backends file"
grep -q "^$removing_hostname " "$STATE/backends" || fail "$removing_hostname is not a configured backend"
grep -v "^$removing_hostname " "$STATE/backends" > "$STATE/backends.new" || true
mv "$STATE/backends.new" "$STATE/backends"
say "backend $removing_hostname removed ($(wc -l < "$STATE/backends") left)"
