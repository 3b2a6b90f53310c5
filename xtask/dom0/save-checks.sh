#!/bin/bash
# Runs in dom0 (a `run` step of xtask/src/xen/save.rs): one save, checkpoint or migration of
# the guest running the application at $1, while a throttled download from its service runs
# across it. Prints one line of words for the harness to judge:
#   op=<op> rc=<xl's status> op_ms=<xl save/restore/migrate, ms> [restore_ms=<ms>]
#   size=<save file bytes, or -> dl=<sha256 of the download> bytes=<n> gap_ms=<longest wait
#   for the next piece> dl_ms=<whole download> down_ms=<longest time GET / went unanswered>
#   uptime=<before>/<after> grants=<before>/<after>
#   heap=<before>/<after> kv=<value read back after> domid=<before>/<after>
#   resumed=<the guest's line after it, or ->
#
#   save-checks.sh IP save-restore   xl save to /tmp in dom0, then xl restore
#   save-checks.sh IP checkpoint     xl save -c (the domain continues: a cancelled suspend)
#   save-checks.sh IP migrate        xl migrate to this host (the receiver run by xl itself,
#                                    `-s ''`: no ssh)
#
# The download (GET /blob/<BLOB>) is read a piece (PIECE bytes) at a time with a pause
# (PAUSE s) while the operation runs, so that it spans it (at most 32 KiB/s: 8 MiB last four
# minutes), then at full speed. The longest wait between pieces is the downtime the client
# saw.
ip=$1
op=$2
# The result line is the only output (fd 3); everything else, bash's notes on the helpers it
# kills included, goes nowhere. Nothing that may outlive the script (xl's monitor of a
# restored domain, the helpers) keeps fd 3: run-job.sh reads the output until it closes.
exec 3>&1 >/dev/null 2>&1
XL=${XL:-/usr/lib/xen-4.17/bin/xl}
NAME=${NAME:-guest}
BLOB=8388608
PIECE=16384
PAUSE=0.5
SAVE=/tmp/guest.save
LOG=/var/log/xen/console/guest-$NAME.log
us() { echo "${EPOCHREALTIME/./}"; }
# Progress on dom0's console (the serial log), not in the result.
diag() { echo "SAVE $op: $*" > /dev/hvc0 2>/dev/null; }
field() { echo "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
status() { timeout 10 wget -q -O - "http://$ip/" 2>/dev/null; }
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
    wget -q -O - "http://$ip/blob/$BLOB" 2>/tmp/dl.err | {
        # Piece by piece while the operation runs, timing each; then the rest at once.
        while [ -f /tmp/dl.slow ]; do
            n=$(dd bs=$PIECE count=1 iflag=fullblock 2>/dev/null | tee -a /tmp/dl.bin | wc -c)
            [ "$n" -gt 0 ] || break
            t=$(us)
            [ $((t - last)) -gt "$gap" ] && gap=$((t - last))
            last=$t
            total=$((total + n))
            echo "$total" > /tmp/dl.progress
            sleep $PAUSE
        done
        cat >> /tmp/dl.bin
        total=$(wc -c < /tmp/dl.bin)
        echo "bytes=$total gap_ms=$((gap / 1000)) dl_ms=$(( ($(us) - start) / 1000 ))" > /tmp/dl.done
    }
}

printf 'kept-across-%s' "$op" > /tmp/save.val
put=$(printf 'PUT /kv/save-%s HTTP/1.0\r\nContent-Length: %s\r\n\r\n%s' "$op" "$(wc -c < /tmp/save.val)" "$(cat /tmp/save.val)" | nc -w 10 "$ip" 80 | head -n 1 | cut -d' ' -f2)
before=$(status)
domid_before=$($XL domid "$NAME" 2>/dev/null)
# xenconsoled logs a migrated domain under the name it had when it appeared
# (`<name>--incoming`): the guest's lines about this operation are the new ones of either log.
IN=/var/log/xen/console/guest-$NAME--incoming.log
lines_before=$(wc -l < "$LOG" 2>/dev/null || echo 0)
in_before=$(wc -l < "$IN" 2>/dev/null || echo 0)
touch /tmp/dl.slow
download 3>&- &
dl_pid=$!
# Wait for the first pieces (the connection is open and sending).
for _ in $(seq 100); do
    [ "$(cat /tmp/dl.progress 2>/dev/null)" -ge $((4 * PIECE)) ] 2>/dev/null && break
    sleep 0.1
done
diag "download under way ($(cat /tmp/dl.progress 2>/dev/null) bytes); put $put; GET / before: $(echo "$before" | head -c 120)"
# While xl works: GET / every half second (2 s to answer), the times of the answers: the
# longest time without one is the service's downtime as a new client sees it.
rm -f /tmp/probe.ok /tmp/probe.stop
(
    while [ ! -f /tmp/probe.stop ]; do
        if timeout 2 wget -q -O /dev/null "http://$ip/" 2>/dev/null; then
            us >> /tmp/probe.ok
            # The first answer once xl is done closes the longest gap.
            [ -f /tmp/dl.slow ] || break
        fi
        sleep 0.5
    done
) 3>&- &
probe_pid=$!
# While xl works: what dom0 sees, every 15 s.
(
    while sleep 15; do
        diag "watch: $($XL list 2>&1 | tail -n +2 | tr -s ' ' | tr '\n' ';') xl-op: $(tail -n 2 /tmp/xl-op.log 2>/dev/null | tr '\n' ' ') dl $(cat /tmp/dl.progress 2>/dev/null)"
        tail -n 3 "$LOG" 2>/dev/null | sed "s/^/SAVE $op guest: /" > /dev/hvc0 2>/dev/null
    done
) 3>&- &
watch_pid=$!
t0=$(us)
restore_ms=-
size=-
case "$op" in
save-restore)
    timeout 240 $XL save "$NAME" "$SAVE" >/tmp/xl-op.log 2>&1 3>&-
    rc=$?
    op_ms=$(( ($(us) - t0) / 1000 ))
    size=$(stat -c %s "$SAVE" 2>/dev/null || echo -)
    diag "saved: rc=$rc in $op_ms ms, $size bytes; download at $(cat /tmp/dl.progress 2>/dev/null) bytes"
    # The monitor of the restored domain logs its own end: the old one's "suspended" goes.
    rm -f "/var/log/xen/xl-$NAME.log"
    t1=$(us)
    if [ "$rc" = 0 ]; then
        timeout 240 $XL restore "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-
        rc=$?
    fi
    restore_ms=$(( ($(us) - t1) / 1000 ))
    rm -f "$SAVE"
    ;;
checkpoint)
    timeout 240 $XL save -c "$NAME" "$SAVE" >/tmp/xl-op.log 2>&1 3>&-
    rc=$?
    op_ms=$(( ($(us) - t0) / 1000 ))
    size=$(stat -c %s "$SAVE" 2>/dev/null || echo -)
    rm -f "$SAVE"
    ;;
migrate)
    rm -f "/var/log/xen/xl-$NAME.log"
    timeout 300 $XL migrate -s '' "$NAME" "$XL migrate-receive" >/tmp/xl-op.log 2>&1 3>&-
    rc=$?
    op_ms=$(( ($(us) - t0) / 1000 ))
    ;;
*)
    echo >&3 "op=$op unknown"
    exit 1
    ;;
esac
kill "$watch_pid" 2>/dev/null
diag "xl done: rc=$rc in $op_ms ms (restore $restore_ms ms), size $size; xl said: $(tr '\n' ' ' < /tmp/xl-op.log)"
diag "download at $(cat /tmp/dl.progress 2>/dev/null) bytes"
rm -f /tmp/dl.slow
# The domain is a new one after a restore or a migration: run-job.sh counts its time from now.
[ "$op" = checkpoint ] || touch /tmp/pvxen.recreated
# The download finishes at full speed (or gives up with wget).
for _ in $(seq 300); do
    [ -f /tmp/dl.done ] && break
    sleep 0.2
done
diag "download: $(cat /tmp/dl.done 2>/dev/null) $(cat /tmp/dl.err 2>/dev/null)"
kill "$dl_pid" 2>/dev/null
wait "$dl_pid" 2>/dev/null
dl=$(sha256sum < /tmp/dl.bin 2>/dev/null | cut -d' ' -f1)
done_words=$(cat /tmp/dl.done 2>/dev/null || echo "bytes=? gap_ms=? dl_ms=?")
after=$(status_within 30)
touch /tmp/probe.stop
wait "$probe_pid" 2>/dev/null
down_ms=$(awk 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { printf "%d", m / 1000 }' /tmp/probe.ok 2>/dev/null)
domid_after=$($XL domid "$NAME" 2>/dev/null)
kv=$(printf 'GET /kv/save-%s HTTP/1.0\r\n\r\n' "$op" | nc -w 10 "$ip" 80 | tr -d '\r' | sed '1,/^$/d')
# What the guest said about it: its console lines since.
resumed=$({ tail -n +"$((lines_before + 1))" "$LOG"; tail -n +"$((in_before + 1))" "$IN"; } 2>/dev/null | grep -E '^APP (resumed|suspend cancelled|suspend failed)' | tail -n 1 | tr ' ' '_')
tail -n 12 "$LOG" 2>/dev/null | sed "s/^/SAVE $op guest: /" > /dev/hvc0 2>/dev/null
diag "logs: $(ls /var/log/xen/console/ | tr '\n' ' ')"
xlerr=$(grep -v '^$' /tmp/xl-op.log | tail -n 1 | tr ' ' '_')
echo >&3 "op=$op rc=$rc op_ms=$op_ms restore_ms=$restore_ms size=$size dl=$dl $done_words down_ms=${down_ms:--}" \
    "uptime=$(field "$before" uptime_ms)/$(field "$after" uptime_ms)" \
    "grants=$(field "$before" grants_in_use)/$(field "$after" grants_in_use)" \
    "heap=$(field "$before" heap_bytes_in_use)/$(field "$after" heap_bytes_in_use)" \
    "put=$put kv=$kv domid=$domid_before/$domid_after resumed=${resumed:--} xl=${xlerr:--}"
