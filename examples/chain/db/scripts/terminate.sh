#!/bin/bash
# TERMINATE of db: remove what the other scripts left.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname db
rm -rf "$STATE"
say "database removed"
