#!/bin/bash
# START of web: every app instance must have been configured as a backend before.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname web
need expected_backends
need_file "$STATE/backends" "INSTANTIATE (install.sh) did not run before START"
count=$(wc -l < "$STATE/backends")
[ "$count" -ge "$expected_backends" ] || \
    fail "$count backend(s) configured, expected at least $expected_backends: $(tr '\n' ';' < "$STATE/backends")"
date +%s > "$STATE/web.running"
say "web front running on $private:$port with backends: $(tr '\n' ';' < "$STATE/backends")"
