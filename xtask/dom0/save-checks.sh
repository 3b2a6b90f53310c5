#!/bin/bash
# Runs in dom0 (a `run` step of xtask/src/xen/save.rs): one save, checkpoint or migration of
# the guest running the application at $1, while a throttled download from its service runs
# across it. Prints one line of words for the harness to judge:
#   op=<op> rc=<xl's status> op_ms=<xl save/restore/migrate, ms> [restore_ms=<ms>]
#   size=<save file bytes, or -> dl=<sha256 of the download> bytes=<n> gap_ms=<longest wait
#   for the next piece> dl_ms=<whole download> down_ms=<longest time GET / went unanswered>
#   uptime=<before>/<after> grants=<before>/<after>
#   heap=<before>/<after> kv=<value read back after> domid=<before>/<after>
#   resumed=<the guest's line after it, or -> spanned=<bytes downloaded when xl was done>
#   monitors=<xl monitor processes after>
#   step_ms=<this script's wall time>
#
#   save-checks.sh IP save-restore   xl save to /tmp in dom0, then xl restore
#   save-checks.sh IP checkpoint     xl save -c (the domain continues: a cancelled suspend)
#   save-checks.sh IP migrate        xl migrate to this host (the receiver run by xl itself,
#                                    `-s ''`: no ssh)
#   save-checks.sh IP boot-suspend [no-xvdb]  xl save asked before the guest boots (created
#                                    paused); with no-xvdb, restored with the config without
#                                    xvdb, where missing-backend, next, goes on from
#   save-checks.sh IP put-during     xl save while a put's commit is held on a stalled disk
#   save-checks.sh IP refuse [later=checkpoint]  the same, held past the guest's bound (about
#                                    65 s), then xl save -c (unless the checkpoint step next
#                                    is its later save)
#   save-checks.sh IP missing-backend  xl restore with a config without xvdb (unless
#                                    boot-suspend no-xvdb did), then with it
#   save-checks.sh IP remonitor      xl save and xl restore, only for the new domain's monitor
#
# xl's monitor (the `xl create` or `xl restore` process that stays behind, writes the
# shutdown reason to /var/log/xen/xl-$NAME.log and restarts the domain on reboot) exits on
# any suspend in Xen 4.17, a cancelled one (xl save -c) included ("Domain has suspended",
# then "Done. Exiting now": tools/xl/xl_vmcontrol.c, handle_domain_death; xl keeps monitoring
# only from Xen 4.20, commit 6b8c85872e). So after checkpoint (and refuse's own xl save -c)
# the same domain runs on unmonitored: an `xl reboot` would end it for good. xtask's steps never end on
# either (a restore makes a new monitor; `remonitor` when nothing else follows), and every
# result line counts the monitors left.
#
# The download (GET /blob/<BLOB>) is read a piece (PIECE bytes) at a time with a pause
# (PAUSE s) while the operation runs, so that it spans it (at most 32 KiB/s: 4 MiB last two
# minutes; `spanned` shows it did), then at full speed (its tail at full speed took 5-12 s of
# each step with 8 MiB). The longest wait between pieces is the downtime the client saw.
ip=$1
op=$2
arg=${3:-}
# The result line is the only output (fd 3); everything else, bash's notes on the helpers it
# kills included, goes nowhere. Nothing that may outlive the script (xl's monitor of a
# restored domain, the helpers) keeps fd 3: run-job.sh reads the output until it closes.
exec 3>&1 >/dev/null 2>&1
XL=${XL:-/usr/lib/xen-4.17/bin/xl}
NAME=${NAME:-guest}
BLOB=4194304
PIECE=16384
PAUSE=0.5
SAVE=/tmp/guest.save
LOG=/var/log/xen/console/guest-$NAME.log
us() { echo "${EPOCHREALTIME/./}"; }
step_t0=$(us)
step_ms() { echo $(( ($(us) - step_t0) / 1000 )); }
# xl's monitors alive (see above): `xl create`, `xl restore` or `xl migrate-receive`
# processes (the command that made a domain has returned by now: what is left monitors).
monitors() {
    n=0
    for d in /proc/[0-9]*; do
        case "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)" in
        *"bin/xl create"* | *"bin/xl restore"* | *"xl migrate-receive"*) n=$((n + 1)) ;;
        esac
    done
    echo "$n"
}
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

# The bad and partial cases (no download: each is about what the guest defers, refuses or
# reports). The result line:
#   op=<op> rc=<xl save's status> rc2=<the next xl's> op_ms=<ms> put=<status> kv=<read back>
#   serving=<GET / after: ok|none> guest=<the guest's APP lines about it, `|`-joined> xl=<...>
DM=${DM:-pvstore}
CFG=${CFG:-$( [ -f /pvxen/guest-app.cfg ] && echo /pvxen/guest-app.cfg || echo /pvxen/guest.cfg )}
# One request over nc: `req METHOD PATH [BODY]` prints the status; the body goes to /tmp/resp.
req() {
    if [ -n "$3" ]; then
        printf '%s %s HTTP/1.0\r\nContent-Length: %s\r\n\r\n%s' "$1" "$2" "${#3}" "$3"
    else
        printf '%s %s HTTP/1.0\r\n\r\n' "$1" "$2"
    fi | nc -w 70 "$ip" 80 | tr -d '\r' > /tmp/resp.all
    head -n 1 /tmp/resp.all | cut -d' ' -f2
    sed '1,/^$/d' /tmp/resp.all > /tmp/resp
}
# The guest's lines since line $1 of its log, about suspending, `|`-joined, spaces as `_`.
guest_lines() {
    tail -n +"$(($1 + 1))" "$LOG" 2>/dev/null |
        grep -E '^APP (suspend|resumed|serving|warning resume|error)' | tr ' ' '_' | paste -sd'|'
}
# The config without the store's disk (busybox has no `sed -z`): the xvdb line dropped, the
# list closed on the line before.
no_xvdb() {
    awk '/vdev=xvdb/ { sub(/,[ \t]*$/, " ]", prev); next }
         NR > 1 && have { print prev } { prev = $0; have = 1 } END { if (have) print prev }' \
        "$CFG" > /tmp/no-xvdb.cfg
}
bad_case() {
    lines0=$(wc -l < "$LOG" 2>/dev/null || echo 0)
    rc2=-; put=-; kv=-
    t0=$(us)
    case "$op" in
    boot-suspend)
        # A suspend asked before the guest runs: xl save waits for the acknowledgement while
        # the domain boots; the guest defers it until its service runs, then suspends.
        $XL destroy "$NAME"
        touch /tmp/pvxen.recreated
        $XL create -p "$CFG" >/tmp/xl-op.log 2>&1 3>&-
        lines0=$(wc -l < "$LOG" 2>/dev/null || echo 0)
        timeout 240 $XL save "$NAME" "$SAVE" >>/tmp/xl-op.log 2>&1 3>&- &
        save_pid=$!
        sleep 2
        $XL unpause "$NAME"
        wait "$save_pid"; rc=$?
        op_ms=$(( ($(us) - t0) / 1000 ))
        rm -f "/var/log/xen/xl-$NAME.log"
        if [ "$arg" = no-xvdb ]; then
            # missing-backend goes on from here: the restore it would make, made now (it
            # reads its guest lines from the line count before it).
            no_xvdb
            t1=$(us)
            n=$(wc -l < "$LOG" 2>/dev/null || echo 0)
            [ "$rc" = 0 ] && { timeout 240 $XL restore /tmp/no-xvdb.cfg "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-; rc2=$?; }
            [ "$rc2" = 0 ] && echo "$n $(( ($(us) - t1) / 1000 ))" > /tmp/save.no-xvdb
        else
            [ "$rc" = 0 ] && { timeout 240 $XL restore "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-; rc2=$?; }
        fi
        touch /tmp/pvxen.recreated
        ;;
    put-during|refuse)
        # A put whose commit is held on the store's disk (device-mapper target $DM suspended)
        # while xl save asks: the guest defers the suspend; the disk is resumed after HOLD s
        # (put-during: within the guest's bound, the suspend goes ahead; refuse: past it, the
        # guest refuses, libxl cancels after its 60 s and a later xl save -c works).
        [ "$op" = refuse ] && hold=14 || hold=3
        dmsetup suspend --noudevsync "$DM"
        ( req PUT "/kv/save-$op" "held-across-$op" > /tmp/put.status ) 3>&- &
        put_pid=$!
        sleep 1
        timeout 240 $XL save "$NAME" "$SAVE" >/tmp/xl-op.log 2>&1 3>&- &
        save_pid=$!
        sleep "$hold"
        dmsetup resume --noudevsync "$DM"
        wait "$save_pid"; rc=$?
        op_ms=$(( ($(us) - t0) / 1000 ))
        if [ "$op" = put-during ]; then
            rm -f "/var/log/xen/xl-$NAME.log"
            [ "$rc" = 0 ] && { timeout 240 $XL restore "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-; rc2=$?; }
            touch /tmp/pvxen.recreated
        elif [ "$arg" = later=checkpoint ]; then
            # The save failed: the same domain runs on (its monitor and log too); the later
            # xl save -c is the checkpoint step's, next.
            rc2=next
        else
            # The save failed: the same domain runs on (its monitor and log too), until this
            # checkpoint, which its monitor takes for its end (see above).
            timeout 240 $XL save -c "$NAME" "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-; rc2=$?
        fi
        wait "$put_pid"
        put=$(cat /tmp/put.status)
        status_within 30 > /dev/null
        kv=$(req GET "/kv/save-$op" > /dev/null; cat /tmp/resp)
        ;;
    missing-backend)
        # Restored with a config without the store's disk: the guest says which device is
        # missing and serves the rest (the store's routes 503); then saved again and restored
        # with the whole config: the store is back.
        if [ -f /tmp/save.no-xvdb ]; then
            # boot-suspend no-xvdb restored it so: its line count and restore time.
            read -r lines0 op_ms < /tmp/save.no-xvdb
            rm -f /tmp/save.no-xvdb
            rc=0
            : > /tmp/xl-op.log
        else
            no_xvdb
            timeout 240 $XL save "$NAME" "$SAVE" >/tmp/xl-op.log 2>&1 3>&-; rc=$?
            op_ms=$(( ($(us) - t0) / 1000 ))
            rm -f "/var/log/xen/xl-$NAME.log"
            [ "$rc" = 0 ] && { timeout 240 $XL restore /tmp/no-xvdb.cfg "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-; rc=$?; }
            touch /tmp/pvxen.recreated
        fi
        status_within 60 > /dev/null
        files=$(req GET /files/index.html > /dev/null; wc -c < /tmp/resp)
        put=$(req PUT /kv/save-missing "while-xvdb-is-missing")
        why=$(tr ' ' '_' < /tmp/resp | head -c 200)
        rm -f "$SAVE" "/var/log/xen/xl-$NAME.log"
        timeout 240 $XL save "$NAME" "$SAVE" >>/tmp/xl-op.log 2>&1 3>&- &&
            timeout 240 $XL restore "$CFG" "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-
        rc2=$?
        touch /tmp/pvxen.recreated
        status_within 60 > /dev/null
        back=$(req PUT /kv/save-missing "after-xvdb-came-back")
        kv=$(req GET /kv/save-missing > /dev/null; cat /tmp/resp)
        put="$put/$back files=$files why=$why"
        ;;
    remonitor)
        timeout 240 $XL save "$NAME" "$SAVE" >/tmp/xl-op.log 2>&1 3>&-; rc=$?
        op_ms=$(( ($(us) - t0) / 1000 ))
        rm -f "/var/log/xen/xl-$NAME.log"
        [ "$rc" = 0 ] && { timeout 240 $XL restore "$SAVE" >>/tmp/xl-op.log 2>&1 3>&-; rc2=$?; }
        touch /tmp/pvxen.recreated
        ;;
    esac
    rm -f "$SAVE"
    serving=none
    status_within 30 > /dev/null && serving=ok
    xlerr=$(grep -E "didn't acknowledge|did not suspend|Failed|failed|ERROR" /tmp/xl-op.log | head -n 3 | tr ' \n' '_|')
    tail -n 12 "$LOG" 2>/dev/null | sed "s/^/SAVE $op guest: /" > /dev/hvc0 2>/dev/null
    diag "xl said: $(tr '\n' ' ' < /tmp/xl-op.log | tail -c 600)"
    echo >&3 "op=$op rc=$rc rc2=$rc2 op_ms=$op_ms put=$put kv=$kv serving=$serving" \
        "guest=$(guest_lines "$lines0") xl=${xlerr:--} monitors=$(monitors) step_ms=$(step_ms)"
    exit 0
}
case "$op" in
boot-suspend | put-during | refuse | missing-backend | remonitor) bad_case ;;
esac

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
    [ "$(cat /tmp/dl.progress 2>/dev/null)" -ge $((2 * PIECE)) ] 2>/dev/null && break
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
# How far the download was when xl was done: less than the whole, or it did not span it.
spanned=$(cat /tmp/dl.progress 2>/dev/null)
diag "download at ${spanned:-?} bytes"
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
    "put=$put kv=$kv domid=$domid_before/$domid_after resumed=${resumed:--} xl=${xlerr:--}" \
    "spanned=${spanned:--} monitors=$(monitors) step_ms=$(step_ms)"
