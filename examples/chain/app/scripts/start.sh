#!/bin/bash
# START of app: CONFIGURE (MODIFY) must have run before, since app depends on db.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname app
need_file "$STATE/app.installed" "INSTANTIATE (install.sh) did not run before START"
need_file "$STATE/db.conf" "CONFIGURE (db_configure.sh) did not run before START"
date +%s > "$STATE/app.running"
say "app running on $private:$port, $(cat "$STATE/db.conf")"
