#!/bin/bash
# STOP of db.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname db
need_file "$STATE/db.running" "STOP without START"
rm -f "$STATE/db.running"
say "database stopped"
