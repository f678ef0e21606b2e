#!/bin/bash
# START of db: INSTANTIATE must have run on this VNFC.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname db
need port 5432
need_file "$STATE/db.installed" "INSTANTIATE (install.sh) did not run before START"
date +%s > "$STATE/db.running"
say "database running on $private:$port"
