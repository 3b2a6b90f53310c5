#!/bin/bash
# Runs in dom0 (a `run` step of xtask/src/xen/save.rs): one save, checkpoint or migration of
# the guest running the application at $1, while a throttled download from its service runs
# across it. Prints one line of words for the harness to judge:
#   op=<op> rc=<xl's status> op_ms=<xl save/restore/migrate, ms> [restore_ms=<ms>]
#   size=<save file bytes, or -> dl=<sha256 of the download> bytes=<n> gap_ms=<longest wait
#   for the next piece> dl_ms=<whole download> uptime=<before>/<after> grants=<before>/<after>
#   heap=<before>/<after> kv=<value read back after> domid=<before>/<after>
#   resumed=<the guest's line after it, or ->
#
#   save-checks.sh IP save-restore   xl save to /tmp in dom0, then xl restore
#   save-checks.sh IP checkpoint     xl save -c (the domain continues: a cancelled suspend)
#   save-checks.sh IP migrate        xl migrate to this host (the receiver run by xl itself,
#                                    `-s ''`: no ssh)
#
# The download (GET /blob/<BLOB>) is read a piece (PIECE bytes) at a time with a pause
# (PAUSE s) while the operation runs, so that it spans it, then at full speed. The longest
# wait between pieces is the downtime the client saw.
ip=$1
op=$2
XL=${XL:-/usr/lib/xen-4.17/bin/xl}
NAME=${NAME:-guest}
BLOB=8388608
PIECE=16384
PAUSE=0.2
SAVE=/tmp/guest.save
LOG=/var/log/xen/console/guest-$NAME.log
us() { echo "${EPOCHREALTIME/./}"; }
field() { echo "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
status() { wget -q -T 5 -O - "http://$ip/" 2>/dev/null; }
# GET / until it answers (the guest reconnecting after a resume), at most $1 s.
status_within() {
    end=$(( $(us) + $1 * 1000000 ))
    while [ "$(us)" -lt "$end" ]; do
        s=$(status)
        [ -n "$s" ] && { echo "$s"; return 0; }
        sleep 0.5
    done
    return 1
}

# The download: pieces read with dd (never more than a piece per read), the time of each.
download() {
    rm -f /tmp/dl.bin /tmp/dl.progress /tmp/dl.done
    start=$(us); last=$start; gap=0; total=0
    wget -q -O - "http://$ip/blob/$BLOB" | {
        while :; do
            n=$(dd bs=$PIECE count=1 iflag=fullblock 2>/dev/null | tee -a /tmp/dl.bin | wc -c)
            [ "$n" -gt 0 ] || break
            t=$(us)
            [ $((t - last)) -gt "$gap" ] && gap=$((t - last))
            last=$t
            total=$((total + n))
            echo "$total" > /tmp/dl.progress
            [ -f /tmp/dl.slow ] && sleep $PAUSE
        done
        echo "bytes=$total gap_ms=$((gap / 1000)) dl_ms=$(( ($(us) - start) / 1000 ))" > /tmp/dl.done
    }
}

printf 'kept-across-%s' "$op" > /tmp/save.val
put=$(printf 'PUT /kv/save-%s HTTP/1.0\r\nContent-Length: %s\r\n\r\n%s' "$op" "$(wc -c < /tmp/save.val)" "$(cat /tmp/save.val)" | nc -w 10 "$ip" 80 | head -n 1 | cut -d' ' -f2)
before=$(status)
domid_before=$($XL domid "$NAME" 2>/dev/null)
lines_before=$(wc -l < "$LOG" 2>/dev/null || echo 0)
touch /tmp/dl.slow
download &
dl_pid=$!
# Wait for the first pieces (the connection is open and sending).
for _ in $(seq 100); do
    [ "$(cat /tmp/dl.progress 2>/dev/null || echo 0)" -ge $((4 * PIECE)) ] && break
    sleep 0.1
done
t0=$(us)
restore_ms=-
size=-
case "$op" in
save-restore)
    $XL save "$NAME" "$SAVE" >/tmp/xl-op.log 2>&1
    rc=$?
    op_ms=$(( ($(us) - t0) / 1000 ))
    size=$(stat -c %s "$SAVE" 2>/dev/null || echo -)
    # The monitor of the restored domain logs its own end: the old one's "suspended" goes.
    rm -f "/var/log/xen/xl-$NAME.log"
    t1=$(us)
    if [ "$rc" = 0 ]; then
        $XL restore "$SAVE" >>/tmp/xl-op.log 2>&1
        rc=$?
    fi
    restore_ms=$(( ($(us) - t1) / 1000 ))
    rm -f "$SAVE"
    ;;
checkpoint)
    $XL save -c "$NAME" "$SAVE" >/tmp/xl-op.log 2>&1
    rc=$?
    op_ms=$(( ($(us) - t0) / 1000 ))
    size=$(stat -c %s "$SAVE" 2>/dev/null || echo -)
    rm -f "$SAVE"
    ;;
migrate)
    rm -f "/var/log/xen/xl-$NAME.log"
    $XL migrate -s '' "$NAME" "$XL migrate-receive" >/tmp/xl-op.log 2>&1
    rc=$?
    op_ms=$(( ($(us) - t0) / 1000 ))
    ;;
*)
    echo "op=$op unknown"
    exit 1
    ;;
esac
rm -f /tmp/dl.slow
# The domain is a new one after a restore or a migration: run-job.sh counts its time from now.
[ "$op" = checkpoint ] || touch /tmp/pvxen.recreated
# The download finishes at full speed (or gives up with wget).
for _ in $(seq 600); do
    [ -f /tmp/dl.done ] && break
    sleep 0.2
done
kill "$dl_pid" 2>/dev/null
wait "$dl_pid" 2>/dev/null
dl=$(sha256sum < /tmp/dl.bin 2>/dev/null | cut -d' ' -f1)
done_words=$(cat /tmp/dl.done 2>/dev/null || echo "bytes=? gap_ms=? dl_ms=?")
after=$(status_within 30)
domid_after=$($XL domid "$NAME" 2>/dev/null)
kv=$(printf 'GET /kv/save-%s HTTP/1.0\r\n\r\n' "$op" | nc -w 10 "$ip" 80 | tr -d '\r' | sed '1,/^$/d')
# What the guest said about it: its console lines since (a migrated domain's console may go to
# the incoming domain's log).
resumed=$(cat "$LOG" /var/log/xen/console/guest-"$NAME"--incoming.log 2>/dev/null | tail -n +"$((lines_before + 1))" | grep -E '^APP (resumed|suspend)' | tail -n 1 | tr ' ' '_')
xlerr=$(grep -v '^$' /tmp/xl-op.log | tail -n 1 | tr ' ' '_')
echo "op=$op rc=$rc op_ms=$op_ms restore_ms=$restore_ms size=$size dl=$dl $done_words" \
    "uptime=$(field "$before" uptime_ms)/$(field "$after" uptime_ms)" \
    "grants=$(field "$before" grants_in_use)/$(field "$after" grants_in_use)" \
    "heap=$(field "$before" heap_bytes_in_use)/$(field "$after" heap_bytes_in_use)" \
    "put=$put kv=$kv domid=$domid_before/$domid_after resumed=${resumed:--} xl=${xlerr:--}"
