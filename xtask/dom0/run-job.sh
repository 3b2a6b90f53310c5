#!/bin/sh
# Runs in dom0 (called by /init): the job the host appended as an overlay, one step per line
# of /pvxen/job.steps (default: "create guest.cfg", "wait-end", "destroy"), forwarding the
# guest's console to hvc0 all along.
#
# /pvxen/job.env (written by the host for each boot) sets:
#   NAME           the guest's name in its xl config (its console log is guest-$NAME.log)
#   GUEST_TIMEOUT  seconds the guest may run (or a wait-line may wait) before giving up
#
# Steps (words separated by single spaces; the rest of a `run` line is one shell command):
#   create <cfg> [paused]   xl create [-p] /pvxen/<cfg>
#   pause                   xl pause $NAME (its console is drained and forwarded)
#   unpause                 xl unpause $NAME
#   wait-end                wait until the guest shuts down, crashes, vanishes or times out
#   wait-line <text>        wait until a console line contains <text> (or the timeout)
#   destroy                 drain the console of the (preserved) domain, then xl destroy
#   run <key> <command>     run <command> with sh; its output's first line is the result
#   digest <key> <file> [bytes]   SHA-256 of <file> (of its first <bytes> bytes)
#
# Output, each line at column 0 (parsed by xtask/src/xen/console.rs):
#   G|<line>                        one line of the guest's console, in order, each once
#   PVXEN created at <uptime>       `xl create` returned successfully
#   PVXEN xl: <line>                output of a failed `xl create`
#   PVXEN dmesg: <line>             Xen's last messages (unless the guest powered off; after a
#                                   timeout also `xl vcpu-list`, debug keys q, e, a, dom0's own
#                                   timers from before the first create, the timers again 3 s
#                                   later, and whether a byte of console input woke the guest:
#                                   "nudged (...): guest continued" or "... still silent")
#   PVXEN end <how> <seconds>       how the guest ended: poweroff, crash, shutdown-<code>,
#                                   timeout, vanished or create-failed
#   PVXEN line <seen|timeout> <text>   what wait-line found
#   PVXEN paused at <uptime>        the guest is paused and its console drained
#   PVXEN result <key> <value>      what a run or digest step gave (`-` for nothing)
#   PVXEN step-failed <step>        a step that could not be carried out
#   PVXEN console-lines <n>         how many G| lines were sent (the host checks it got them all)
#
# How the guest ended comes from the shutdown reason code (0 poweroff, 1 reboot, 2 suspend,
# 3 crash, 4 watchdog, 5 soft reset), which the monitoring `xl create` process writes to
# /var/log/xen/xl-$NAME.log ("Domain 1 has shut down, reason code 0 0x0"); `xl list -v`
# (flags s = shut down, c = crashed; reason code column) is the slower fallback. The xl config
# preserves the domain on every kind of shutdown, so xenconsoled can still drain the console
# ring before we destroy it.
. /pvxen/job.env
XL=/usr/lib/xen-4.17/bin/xl
export XL NAME
LOG=/var/log/xen/console/guest-$NAME.log
XLLOG=/var/log/xen/xl-$NAME.log
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "PVXEN $*"; }
secs() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }'; }

sent=0
# Forward complete console lines not yet sent (all remaining lines, even an unterminated last
# one, when called with "final").
forward() {
    [ -f "$LOG" ] || return 0
    if [ "${1:-}" = final ]; then
        total=$(awk 'END { print NR }' "$LOG")
    else
        total=$(wc -l < "$LOG")
    fi
    if [ "$total" -gt "$sent" ]; then
        awk -v s="$sent" -v e="$total" 'NR > s && NR <= e { sub(/\r$/, ""); print "G|" $0 }' "$LOG"
        sent=$total
    fi
}

t0=$(up)
alive=no

create() {
    # dom0's own timers, once per boot before any guest, so that a hung guest's timer can be
    # told from dom0's in the dump (the singleshot timer's data is the struct vcpu).
    [ -n "${DOM0_TIMERS+set}" ] || DOM0_TIMERS=$(timers "dom0's timers before the first create" | grep singleshot)
    t0=$(up)
    rm -f "$XLLOG"
    if [ "${2:-}" = paused ]; then flag=-p; else flag=; fi
    if ! $XL create $flag "/pvxen/$1" >/tmp/xl-create.log 2>&1; then
        sed 's/^/PVXEN xl: /' /tmp/xl-create.log
        say "end create-failed $(secs "$t0")"
        return 1
    fi
    alive=yes
    say "created at $(up)"
}

wait_end() {
    how=""
    polls=0
    while [ -z "$how" ]; do
        forward
        polls=$((polls + 1))
        # The monitor process `xl create` leaves behind logs the shutdown reason; grep is cheap,
        # while each `xl list` costs dom0 (one vCPU, shared with xenconsoled) a good part of a
        # second.
        code=$(sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' "$XLLOG" 2>/dev/null | head -n 1)
        if [ -z "$code" ] && [ $((polls % 10)) = 0 ]; then
            line=$($XL list -v "$NAME" 2>/dev/null | awk 'NR == 2')
            if [ -z "$line" ]; then
                how=vanished
            else
                case "$(echo "$line" | awk '{ print $5 }')" in
                    *c*) code=3 ;;
                    *s*) code=$(echo "$line" | awk '{ print $8 }') ;;
                esac
            fi
        fi
        case "$code" in
            "") ;;
            0) how=poweroff ;;
            3) how=crash ;;
            *) how="shutdown-$code" ;;
        esac
        if [ -z "$how" ] && [ "$(secs "$t0" | cut -d. -f1)" -ge "$GUEST_TIMEOUT" ]; then
            how=timeout
        fi
        [ -n "$how" ] || sleep 0.2
    done
    elapsed=$(secs "$t0")
    drain
    say "end $how $elapsed"
    case "$how" in
        poweroff) ;;
        timeout) hung ;;
        # Xen's last words (a triple fault's register dump, ...) are about the guest by now.
        *) $XL dmesg | tail -n 30 | sed 's/^/PVXEN dmesg: /' ;;
    esac
}

# Xen's timer lines (debug key a: "ex=<expiry - NOW()>us timer=<ptr> cb=<fn>(<data>)"; a
# singleshot timer's data is its struct vcpu) from the tail of `xl dmesg`, tagged with $1.
timers() {
    $XL debug-keys a >/dev/null 2>&1
    $XL dmesg | tail -n 60 | awk -v tag="$1" '
        /Dumping timer queues/ { n = 0; delete keep }
        /CPU[0-9]+:/ || / ex=/ { keep[++n] = $0 }
        END { for (i = 1; i <= n; i++) print "PVXEN dmesg: " tag ": " keep[i] }'
}

# A guest that never ended: Xen's view of it (its vCPU's state and pending events, its event
# channels, the timer queues with NOW()), to tell a lost wake-up from a guest that spins; then
# a nudge (a byte of console input: an event on its console port) to see whether it was only
# waiting for a wake-up; if it still does not move, an NMI, whose handler prints its RIP.
hung() {
    $XL vcpu-list 2>&1 | sed 's/^/PVXEN dmesg: vcpu-list: /'
    $XL debug-keys q >/dev/null 2>&1
    $XL debug-keys e >/dev/null 2>&1
    $XL debug-keys a >/dev/null 2>&1
    $XL dmesg | tail -n 200 | sed 's/^/PVXEN dmesg: /'
    [ -z "$DOM0_TIMERS" ] || echo "$DOM0_TIMERS"
    # Again a few seconds later: a timer whose ex= fell by as much is not being re-armed.
    sleep 3
    $XL vcpu-list "$NAME" 2>&1 | sed 's/^/PVXEN dmesg: vcpu-list 3 s later: /'
    timers "timers 3 s later"
    domid=$($XL domid "$NAME" 2>/dev/null)
    tty=$(xenstore-read "/local/domain/$domid/console/tty" 2>/dev/null)
    before=$(wc -c < "$LOG" 2>/dev/null || echo 0)
    if [ -n "$tty" ] && printf '\n' > "$tty" 2>/dev/null; then
        sleep 5
        after=$(wc -c < "$LOG" 2>/dev/null || echo 0)
        if [ "$after" != "$before" ]; then
            say "dmesg: nudged (console input on $tty): guest continued"
            # Let it finish, to see whether it passes once woken (the boot still fails).
            t1=$(up)
            while [ "$(secs "$t1" | cut -d. -f1)" -lt 60 ] && ! grep -q "has shut down" "$XLLOG" 2>/dev/null; do
                forward
                sleep 1
            done
            drain
            say "dmesg: after the nudge: $(sed -n 's/.*\(has shut down.*\)/\1/p' "$XLLOG" 2>/dev/null | head -n 1)"
            $XL vcpu-list "$NAME" 2>&1 | sed 's/^/PVXEN dmesg: vcpu-list after the nudge: /'
            return
        fi
        say "dmesg: nudged (console input on $tty): guest still silent"
    else
        say "dmesg: nudge failed (console tty ${tty:-unknown})"
    fi
    $XL vcpu-list "$NAME" 2>&1 | sed 's/^/PVXEN dmesg: vcpu-list after the nudge: /'
    timers "timers after the nudge"
    $XL trigger "$NAME" nmi >/dev/null 2>&1
    sleep 3
    drain
}

# xenconsoled drains the ring of a preserved domain: wait (at most 3 s) until the log stops
# growing, then send the rest.
drain() {
    size() { wc -c < "$LOG" 2>/dev/null || echo 0; }
    i=0
    before=$(size)
    while [ $i -lt 15 ]; do
        sleep 0.2
        now=$(size)
        [ "$now" = "$before" ] && break
        before=$now
        i=$((i + 1))
    done
    forward final
}

wait_line() {
    start=$(up)
    while :; do
        forward
        if [ -f "$LOG" ] && grep -qF -- "$1" "$LOG"; then
            forward
            say "line seen $1"
            return 0
        fi
        if [ "$(secs "$start" | cut -d. -f1)" -ge "$GUEST_TIMEOUT" ]; then
            say "line timeout $1"
            return 1
        fi
        sleep 0.2
    done
}

destroy() {
    [ "$alive" = yes ] || return 0
    drain
    $XL destroy "$NAME" >/dev/null 2>&1
    alive=no
}

result() {
    value=$(printf '%s\n' "$2" | head -n 1)
    say "result $1 ${value:--}"
}

if [ -f /pvxen/job.steps ]; then
    steps=/pvxen/job.steps
else
    steps=/tmp/default.steps
    printf 'create guest.cfg\nwait-end\ndestroy\n' > "$steps"
fi

while IFS= read -r step || [ -n "$step" ]; do
    set -- $step
    verb=${1:-}
    case "$verb" in
        ""|"#"*) continue ;;
        create) create "$2" "${3:-}" || break ;;
        pause)
            if $XL pause "$NAME"; then
                drain
                say "paused at $(up)"
            else
                say "step-failed $step"
            fi
            ;;
        unpause) $XL unpause "$NAME" || say "step-failed $step" ;;
        wait-end) wait_end ;;
        wait-line) wait_line "${step#wait-line }" ;;
        destroy) destroy ;;
        run)
            key=$2
            cmd=${step#run "$key" }
            result "$key" "$(sh -c "$cmd" 2>&1 < /dev/null)"
            # A command that made the domain anew (xl restore, xl migrate) says so: the
            # guest's time limit counts from then.
            if [ -f /tmp/pvxen.recreated ]; then t0=$(up); rm -f /tmp/pvxen.recreated; fi
            ;;
        digest)
            if [ -n "${4:-}" ]; then
                out=$(head -c "$4" "$3" | sha256sum)
            else
                out=$(sha256sum < "$3")
            fi
            result "$2" "${out%% *}"
            ;;
        *) say "step-failed $step" ;;
    esac
done < "$steps"
destroy
say "console-lines $sent"
