# shellcheck shell=bash
# Which RabbitMQ node the set-up scripts talk to (sourced by ensure-services.sh; the decision is a pure
# function of its arguments so that tests can run it with a fake environment).
#
# RabbitMQ's default node name is rabbit@<short host name>; Debian's rabbitmq-server package starts
# that node from its post-install script on a machine with systemd. In a container (no init) nothing
# starts it, and the host name may not resolve: there we start the node ourselves as rabbit@localhost
# and write that name into rabbitmq-env.conf so that rabbitmqctl and later starts agree. Never rename
# a node that already runs: rabbitmqctl would then ask a node that does not exist ("TCP connection
# succeeded but Erlang distribution failed").

# rabbit_node_decide ENVCONF_NODENAME EPMD_NAMES SHORT_HOSTNAME
#   ENVCONF_NODENAME  the NODENAME= value of rabbitmq-env.conf ("" when absent or commented out)
#   EPMD_NAMES        the output of `epmd -names` ("" when epmd is absent or not running)
#   SHORT_HOSTNAME    `hostname -s`
# prints "NODE WRITE": the node to talk to, and whether to write NODENAME=NODE into rabbitmq-env.conf
# (yes only when no node runs and no name is configured).
rabbit_node_decide() {
    local configured=$1 names=$2 host=$3
    if [ -n "$configured" ]; then
        case $configured in
            *@*) printf '%s no\n' "$configured" ;;
            *) printf '%s@%s no\n' "$configured" "$host" ;;   # RabbitMQ appends the host name
        esac
        return 0
    fi
    if printf '%s\n' "$names" | grep -q '^name rabbit at port '; then
        printf 'rabbit@%s no\n' "$host"    # started by the package (systemd): RabbitMQ's default name
        return 0
    fi
    printf 'rabbit@localhost yes\n'
}

# rabbit_envconf_nodename FILE: the NODENAME= value in FILE ("" when absent).
rabbit_envconf_nodename() {
    sed -n 's/^[[:space:]]*\(export[[:space:]]\+\)\?NODENAME=["'\'']\?\([^"'\'' ]*\).*/\2/p' "$1" 2>/dev/null | tail -n 1
}

# rabbit_epmd_names: the names registered with epmd on this machine ("" when none).
rabbit_epmd_names() {
    if command -v epmd >/dev/null 2>&1; then
        epmd -names 2>/dev/null || true
    fi
}

# rabbit_node_here ENVCONF: rabbit_node_decide on this machine.
rabbit_node_here() {
    rabbit_node_decide "$(rabbit_envconf_nodename "$1")" "$(rabbit_epmd_names)" "$(hostname -s 2>/dev/null || hostname)"
}
