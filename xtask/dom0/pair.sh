#!/bin/sh
# Runs in dom0 during the stock-Xen platform boot (`run` steps of xtask/src/xen/pair.rs): the
# `pair` self-test group's two domains, pair-offer and pair-accept (configs in /pvxen/).
# Prints one line: the result the harness reads.
#   create        xl create -p of both (paused)
#   peers         each domain's data/peer-domid := the other's id (written while both are
#                 paused), then "ok" if each home's data node and the new key are still the
#                 domain's own (permissions n<id>), else what xenstore-ls -p showed
#   run           unpause both, wait until both have shut down (or GUEST_TIMEOUT seconds):
#                 "offer=<how> accept=<how> secs=<seconds from unpause to both down>"
#   console NAME  the console log of NAME on one line: each line percent-encoded ("%" as
#                 "%25") and ended by "%0A"; "-" if there is none
#   destroy       xl destroy both
. /pvxen/job.env
XL=/usr/lib/xen-4.17/bin/xl
up() { cut -d' ' -f1 /proc/uptime; }
# The shutdown reason code the monitoring `xl create` logged for domain $1 (empty: none yet).
code() {
    sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' "/var/log/xen/xl-$1.log" 2>/dev/null | head -n 1
}
how() {
    case "$1" in
        "") echo timeout ;;
        0) echo poweroff ;;
        3) echo crash ;;
        *) echo "shutdown-$1" ;;
    esac
}
# The permission list xenstore-ls -p shows for child $2 of $1, e.g. "n1".
perms() {
    xenstore-ls -p "$1" 2>&1 | sed -n "s/^$2 = .*(\([^()]*\))\$/\1/p" | head -n 1
}

case "$1" in
create)
    for side in offer accept; do
        rm -f "/var/log/xen/xl-pair-$side.log"
        if ! $XL create -p "/pvxen/pair-$side.cfg" >"/tmp/pair-$side.log" 2>&1; then
            echo "xl create -p pair-$side failed: $(grep -i error "/tmp/pair-$side.log" | head -n 1)"
            exit 0
        fi
    done
    echo ok
    ;;
peers)
    a=$($XL domid pair-offer 2>/dev/null)
    b=$($XL domid pair-accept 2>/dev/null)
    if [ -z "$a" ] || [ -z "$b" ]; then
        echo "no domain ids: pair-offer '$a', pair-accept '$b'"
        exit 0
    fi
    if ! xenstore-write "/local/domain/$a/data/peer-domid" "$b" ||
        ! xenstore-write "/local/domain/$b/data/peer-domid" "$a"; then
        echo "xenstore-write of data/peer-domid failed"
        exit 0
    fi
    bad=
    for id in "$a" "$b"; do
        p=$(perms "/local/domain/$id" data)
        [ "$p" = "n$id" ] || bad="$bad /local/domain/$id/data ($p)"
        p=$(perms "/local/domain/$id/data" peer-domid)
        [ "$p" = "n$id" ] || bad="$bad /local/domain/$id/data/peer-domid ($p)"
    done
    if [ -n "$bad" ]; then
        echo "not owned by the domain alone:$bad"
    else
        echo ok
    fi
    ;;
run)
    start=$(up)
    if ! $XL unpause pair-offer || ! $XL unpause pair-accept; then
        echo "xl unpause failed"
        exit 0
    fi
    while :; do
        o=$(code pair-offer)
        c=$(code pair-accept)
        [ -n "$o" ] && [ -n "$c" ] && break
        now=$(awk -v a="$start" -v b="$(up)" 'BEGIN { printf "%d", b - a }')
        [ "$now" -ge "$GUEST_TIMEOUT" ] && break
        sleep 0.2
    done
    secs=$(awk -v a="$start" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }')
    echo "offer=$(how "$o") accept=$(how "$c") secs=$secs"
    ;;
console)
    f="/var/log/xen/console/guest-$2.log"
    # xenconsoled drains the ring of a preserved domain: wait (at most 3 s) until the log
    # stops growing.
    size() { wc -c < "$f" 2>/dev/null || echo 0; }
    i=0
    before=$(size)
    while [ $i -lt 15 ]; do
        sleep 0.2
        now=$(size)
        [ "$now" = "$before" ] && break
        before=$now
        i=$((i + 1))
    done
    [ -s "$f" ] || exit 0
    tail -n 400 "$f" | awk '{ sub(/\r$/, ""); gsub(/%/, "%25"); printf "%s%%0A", $0 } END { print "" }'
    ;;
destroy)
    $XL destroy pair-offer >/dev/null 2>&1
    $XL destroy pair-accept >/dev/null 2>&1
    echo ok
    ;;
*)
    echo "pair.sh: unknown command $1"
    ;;
esac
