#!/bin/bash
# STOP of web.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname web
need_file "$STATE/web.running" "STOP without START"
rm -f "$STATE/web.running"
say "web front stopped"
