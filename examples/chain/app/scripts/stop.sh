#!/bin/bash
# STOP of app.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname app
need_file "$STATE/app.running" "STOP without START"
rm -f "$STATE/app.running"
say "app stopped"
