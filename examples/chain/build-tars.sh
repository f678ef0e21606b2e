#!/bin/bash
# Build the chain example's VNF packages as tar files (the form the Open Baton NFVO onboards):
#   examples/chain/build-tars.sh [OUT_DIR]     (default: examples/chain/dist)
# OUT_DIR then holds db.tar, app.tar, web.tar and a copy of nsd.json: `gvnfm up OUT_DIR` deploys it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/dist}"
mkdir -p "$out"
for vnf in db app web; do
    tar -C "$here/$vnf" -cf "$out/$vnf.tar" Metadata.yaml vnfd.json scripts
    echo "$out/$vnf.tar"
done
cp "$here/nsd.json" "$out/nsd.json"
