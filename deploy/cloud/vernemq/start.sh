#!/bin/sh
# Start one VerneMQ node of the cluster and join it to the others.
#
# vernemq.conf is shared by every node; what differs per node is added here: the node's name
# (from its hostname) and the Erlang distribution cookie (a compose secret, never in a file of
# the repository). A node started with VERNEMQ_DISCOVERY_NODE joins that node's cluster.
set -eu

VMQ=/opt/vernemq
cp /etc/vernemq/vernemq.conf.in "$VMQ/etc/vernemq.conf"
{
    echo "nodename = VerneMQ@$(hostname)"
    echo "distributed_cookie = $(cat /run/secrets/vernemq-cookie)"
} >>"$VMQ/etc/vernemq.conf"

"$VMQ/bin/vernemq" start
until "$VMQ/bin/vmq-admin" cluster show >/dev/null 2>&1; do sleep 1; done
if [ -n "${VERNEMQ_DISCOVERY_NODE:-}" ]; then
    until "$VMQ/bin/vmq-admin" cluster join discovery-node="$VERNEMQ_DISCOVERY_NODE"; do
        sleep 2
    done
fi

trap '"$VMQ/bin/vernemq" stop; exit 0' TERM INT
# Stay in the foreground while the node lives, so the container's state is the node's.
while "$VMQ/bin/vernemq" ping >/dev/null 2>&1; do
    sleep 5 &
    wait $!
done
echo "start-vernemq: the node stopped" >&2
exit 1
