#!/bin/bash
# TERMINATE of web.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname web
rm -rf "$STATE"
say "web front removed"
