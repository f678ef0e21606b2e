#!/usr/bin/env bash
# Make sure .venv (in the current folder) is a working virtual environment, made with PYTHON
# (argument 1, else $PYTHON, else python3.11, else python3). On Debian `python3 -m venv` needs the
# python3-venv package (ensurepip): when making the venv fails, install it with apt-get if we are
# root, else say what to install. A .venv without pip (left by a failed attempt) is made again. A bare
# image without any python3 gets python3 and python3-venv (Debian 12: Python 3.11) the same way.
set -euo pipefail

PY=${1:-${PYTHON:-python3.11}}
command -v "$PY" >/dev/null 2>&1 || PY=python3

apt_get_install() {   # apt_get_install PACKAGE...: as root, or say what to install and fail
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "install it as root (apt-get install $*) or run this script as root" >&2
        return 1
    fi
    echo "installing $* with apt-get" >&2
    local out
    if ! out=$(apt-get update -qq 2>&1) \
        || ! out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" 2>&1); then
        echo "apt-get failed installing $*:" >&2
        printf '%s\n' "$out" | tail -n 5 >&2
        return 1
    fi
}

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "no $PY on this machine" >&2
    apt_get_install python3 python3-venv || exit 1
    PY=python3
fi

if [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; then
    exit 0
fi

make_venv() {
    rm -rf .venv
    if err=$("$PY" -m venv .venv 2>&1); then
        return 0
    fi
    rm -rf .venv
    return 1
}

make_venv && exit 0
ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pkgs=(python3-venv)
if command -v apt-cache >/dev/null 2>&1 && apt-cache show "python${ver}-venv" >/dev/null 2>&1; then
    pkgs+=("python${ver}-venv")
fi
echo "cannot make .venv: '$PY -m venv' failed (on Debian it needs ${pkgs[*]}):" >&2
echo "$err" | tail -n 3 >&2
apt_get_install "${pkgs[@]}" || exit 1
if ! make_venv; then
    echo "cannot make .venv even with ${pkgs[*]} installed: '$PY -m venv' says:" >&2
    echo "$err" | tail -n 5 >&2
    exit 1
fi
