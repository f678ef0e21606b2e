# Helpers of the chain example's scripts (sourced by them, never run as a lifecycle script).
# Every check prints nothing on success and exits 1 with a clear message on stderr on failure.
SCRIPT="$(basename "$0")"
STATE="${GVNFM_HOST_ROOT:-}/var/lib/chain"

fail() { echo "$SCRIPT on ${hostname:-<no hostname>}: $*" >&2; exit 1; }

# value NAME: the value of the variable NAME (fails when it is unset or empty)
value() {
    eval "_isset=\${$1+x}; _val=\${$1-}"
    [ -n "$_isset" ] || fail "variable \$$1 is missing"
    [ -n "$_val" ] || fail "variable \$$1 is empty"
    printf '%s' "$_val"
}

# need NAME [EXPECTED]: NAME is set, non-empty (and equal to EXPECTED)
need() {
    _v="$(value "$1")" || exit 1
    if [ $# -ge 2 ] && [ "$_v" != "$2" ]; then fail "\$$1 is '$_v', expected '$2'"; fi
}

# need_ipv4 NAME: NAME holds an IPv4 address
need_ipv4() {
    _v="$(value "$1")" || exit 1
    case "$_v" in
        *[!0-9.]*|.*|*.|*..*) fail "\$$1 is '$_v', not an IPv4 address" ;;
    esac
    [ "$(printf '%s' "$_v" | tr -cd . | wc -c)" -eq 3 ] || fail "\$$1 is '$_v', not an IPv4 address"
}

# need_host NAME PREFIX: NAME holds a hostname <PREFIX>-<digits>
need_host() {
    _v="$(value "$1")" || exit 1
    case "$_v" in
        "$2"-*) _rest="${_v#"$2"-}" ;;
        *) fail "\$$1 is '$_v', expected a hostname starting with '$2-'" ;;
    esac
    case "$_rest" in
        ''|*[!0-9]*) fail "\$$1 is '$_v', expected '$2-<digits>'" ;;
    esac
}

# absent NAME: NAME must not be set (dependency values reach only type-prefixed CONFIGURE scripts)
absent() {
    eval "_isset=\${$1+x}"
    [ -z "$_isset" ] || fail "variable \$$1 is set ('$(eval "printf '%s' \"\${$1}\"")') but must not be here"
}

# need_file PATH WHY: PATH exists
need_file() { [ -f "$1" ] || fail "$1 is missing: $2"; }

say() { echo "$SCRIPT on $hostname: $*"; }
