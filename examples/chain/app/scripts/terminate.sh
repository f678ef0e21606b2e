#!/bin/bash
# TERMINATE of app.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname app
rm -rf "$STATE"
say "app removed"
