#!/bin/sh
# Runs in dom0 during the device boot (a `run` step of xtask/src/xen/blk.rs): real clients
# (busybox's wget and nc) against the guest's HTTP service at $1. Prints one line: the
# result the harness judges.
#   download   sha256 of GET /blob/16777216
#   upload     "<local sha256> <the service's answer>" for 16 MiB of random bytes (no NUL: busybox's
#              wget sends the file as a C string) POSTed to /sink
#   malformed  the status of three bad requests, then the first bytes of GET / after them
#   load N     ab -k: N requests over 16 keep-alive connections after a warm-up, with the
#              service's grants and heap bytes in use before and after
#   files F    every file listed in F (`<sha256>  <path>`, the host's digests of the archive's
#              sources) fetched from /files/<path> and compared; the Content-Type of
#              index.html and the status of a missing file
#   kv         PUT, GET, overwrite, a value at the limit and one over it, list, DELETE, 404 after;
#              leaves `big` and `persist` in the store
#   persist    what a fresh domain on the same disk answers for `big`, `persist` and the list
#   reboot     `xl reboot` of the application (the domain $NAME, on_reboot = "restart"): a
#              value put before, read from the domain xl built again once it serves; xl's
#              status, the domids before and after, the new domain's state, how many
#              `APP stopped` and `APP serving` lines the reboot added, the reason codes the
#              monitoring xl logged (then emptied: run-job.sh's wait-end reads the first)
#   churn N    N connections opened one after another and then all closed at once; then
#              whether GET / answers and in how many ms
#   slow-heads N S  N clients send request heads a line a second for S s (a closed one opens
#              again); meanwhile GET / timed once a second: how many answered, the slowest
#   head-range-etag  HEAD, Range and If-None-Match on /files/index.html: each status, the
#              HEAD's body length, whether its length and ETag are GET's, the range's body
#              length and Content-Range
#   integrity N SHA  N uploads of one 16 MiB file to /sink and N downloads of
#              /blob/16777216 (whose sha256 is SHA), alternating: how many of each came back
#              wrong, and where the first wrong download differs from a right one (cmp: the
#              first offset, how many bytes)
#   diag NAME  the domain's state and RIP as dom0 sees them (printed, not judged)
#   stack      the boot stack's size and high-water mark (since boot, and since the service
#              started, with its callers' depth then), and the RSP0 stack's (GET /'s "stack"):
#              `size=N peak=N serve_peak=N serve_base=N rsp0_size=N rsp0_peak=N`, or `none`
#   bench N    ab -k on /files/index.html: N requests over 16 connections three times, then
#              over 128 (requests per second, printed, not judged)
#   stall-prep IMAGE NAME  a device-mapper target NAME over a loop device on IMAGE
#   stalled NAME  with the store's disk (target NAME) suspended: GET / timed, a put timed (202
#              expected after the service's storage deadline: accepted, on its way to the
#              disk); resumed: what was acknowledged
ip=$1
# GET / timed with bash's clock: prints `status=<ok|failed> ms=<ms>`.
timed_get() {
    bash -c 'start=${EPOCHREALTIME/./}
        if timeout 5 wget -q -O /tmp/timed.json "http://$1/" && grep -q "^{\"uptime_ms\"" /tmp/timed.json; then
            status=ok; else status=failed; fi
        echo "status=$status ms=$(( (${EPOCHREALTIME/./} - start) / 1000 ))"' timed "$ip"
}
# One request over nc (HTTP/1.0: the service closes after answering). `req METHOD PATH
# [BODY-FILE]` leaves the response in /tmp/resp and prints its status.
req() {
    if [ -n "${3:-}" ]; then
        { printf '%s %s HTTP/1.0\r\nContent-Length: %s\r\n\r\n' "$1" "$2" "$(wc -c < "$3")"; cat "$3"; }
    else
        printf '%s %s HTTP/1.0\r\n\r\n' "$1" "$2"
    fi | nc -w 10 "$ip" 80 > /tmp/resp
    head -n 1 /tmp/resp | cut -d' ' -f2
}
# The body of /tmp/resp (ASCII bodies without a line end only).
body() { tr -d '\r' < /tmp/resp | sed '1,/^$/d'; }
# A file of $2 bytes, ASCII letters in a pattern that shows misplaced bytes.
letters() { awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%c", 97 + (i * 7 + int(i / 26)) % 26 }' > "$1"; }
# The value of header $1 in /tmp/resp's head (case-insensitive name), and its body length.
header_field() { tr -d '\r' < /tmp/resp | sed '/^$/q' | grep -i "^$1:" | head -n 1 | cut -d' ' -f2-; }
body_length() { tr -d '\r' < /tmp/resp | sed '1,/^$/d' | wc -c; }
case "$2" in
download)
    wget -q -O - "http://$ip/blob/16777216" | sha256sum | cut -d' ' -f1
    ;;
upload)
    # busybox's wget posts the file as a C string: random bytes, but no NUL.
    head -c 16777216 /dev/urandom | tr '\000' '\001' > /tmp/up.bin
    local=$(sha256sum /tmp/up.bin | cut -d' ' -f1)
    answer=$(wget -q -O - --post-file=/tmp/up.bin "http://$ip/sink")
    echo "$local $answer"
    ;;
integrity)
    head -c 16777216 /dev/urandom | tr '\000' '\001' > /tmp/int-up.bin
    local=$(sha256sum /tmp/int-up.bin | cut -d' ' -f1)
    up_wrong=0; down_wrong=0; first=""; right=""; i=0
    while [ "$i" -lt "$3" ]; do
        answer=$(wget -q -O - --post-file=/tmp/int-up.bin "http://$ip/sink")
        case "$answer" in
            *"\"sha256\":\"$local\""*) ;;
            *) up_wrong=$((up_wrong + 1))
               [ -n "$first" ] || first="upload-$i-answered-$(echo "$answer" | tr -c 'a-z0-9:,{}"\n' _)" ;;
        esac
        wget -q -O /tmp/int-down.bin "http://$ip/blob/16777216"
        if [ "$(sha256sum /tmp/int-down.bin | cut -d' ' -f1)" = "$4" ]; then
            [ -n "$right" ] || { cp /tmp/int-down.bin /tmp/int-right.bin; right=yes; }
        else
            down_wrong=$((down_wrong + 1))
            if [ -z "$first" ]; then
                if [ -n "$right" ]; then
                    at=$(cmp -l /tmp/int-down.bin /tmp/int-right.bin 2>&1 | head -n 1 | awk '{print $1}')
                    bytes=$(cmp -l /tmp/int-down.bin /tmp/int-right.bin 2>/dev/null | wc -l)
                    first="download-$i-differs-at-${at:-eof}-in-$bytes-bytes-length-$(wc -c < /tmp/int-down.bin)"
                else
                    first="download-$i-wrong-before-any-right-one"
                fi
            fi
        fi
        i=$((i + 1))
    done
    rm -f /tmp/int-up.bin /tmp/int-down.bin /tmp/int-right.bin
    echo "uploads=$3 wrong=$up_wrong downloads=$3 wrong=$down_wrong first=${first:-none}"
    ;;
malformed)
    status() { nc -w 5 "$ip" 80 | head -n 1 | cut -d' ' -f2; }
    bad_line=$(printf 'GARBAGE\r\n\r\n' | status)
    big=$(head -c 9000 /dev/zero | tr '\0' x)
    oversize=$(printf 'GET / HTTP/1.1\r\nHost: g\r\nX-Big: %s\r\n\r\n' "$big" | status)
    bad_length=$(printf 'POST /sink HTTP/1.1\r\nHost: g\r\nContent-Length: abc\r\n\r\n' | status)
    after=$(wget -q -O - "http://$ip/" | head -c 14)
    echo "$bad_line $oversize $bad_length $after"
    ;;
load)
    # ab -k: $3 requests over 16 keep-alive connections, after a 200-request warm-up;
    # the service's grants and heap bytes in use are read (GET /) after each.
    field() { echo "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
    ab -k -n 200 -c 16 "http://$ip/blob/1024" > /tmp/ab-warm.log 2>&1
    before=$(wget -q -O - "http://$ip/")
    ab -k -n "$3" -c 16 "http://$ip/blob/1024" > /tmp/ab.log 2>&1
    after=$(wget -q -O - "http://$ip/")
    complete=$(awk '/^Complete requests/ {print $3}' /tmp/ab.log)
    failed=$(awk '/^Failed requests/ {print $3}' /tmp/ab.log)
    non2xx=$(awk '/^Non-2xx responses/ {print $3}' /tmp/ab.log)
    rps=$(awk '/^Requests per second/ {print $4}' /tmp/ab.log)
    echo "complete=$complete failed=$failed non2xx=${non2xx:-0} rps=$rps" \
        "grants=$(field "$before" grants_in_use)/$(field "$after" grants_in_use)" \
        "heap=$(field "$before" heap_bytes_in_use)/$(field "$after" heap_bytes_in_use)"
    ;;
files)
    total=0; ok=0; bad=""
    while read -r sum path; do
        total=$((total + 1))
        got=$(wget -q -O - "http://$ip/files/$path" | sha256sum | cut -d' ' -f1)
        if [ "$got" = "$sum" ]; then ok=$((ok + 1)); else bad="$bad $path"; fi
    done < "$3"
    req GET /files/index.html > /dev/null
    type=$(tr -d '\r' < /tmp/resp | sed -n 's/^Content-Type: //p' | head -n 1)
    missing=$(req GET /files/no/such/file)
    echo "files=$total ok=$ok missing=$missing bad=${bad# }; type=$type"
    ;;
kv)
    printf one > /tmp/v1; printf two > /tmp/v2; printf kept-across-boots > /tmp/vp
    letters /tmp/big 16384
    letters /tmp/toobig 16385
    put=$(req PUT /kv/alpha /tmp/v1)
    req GET /kv/alpha > /dev/null; get=$(body)
    put2=$(req PUT /kv/alpha /tmp/v2)
    req GET /kv/alpha > /dev/null; get2=$(body)
    big=$(req PUT /kv/big /tmp/big)
    req GET /kv/big > /dev/null
    if [ "$(printf %s "$(body)" | sha256sum)" = "$(sha256sum < /tmp/big)" ]; then bigsame=yes; else bigsame=no; fi
    toolarge=$(req PUT /kv/toobig /tmp/toobig)
    persist=$(req PUT /kv/persist /tmp/vp)
    req GET /kv/ > /dev/null; list=$(body)
    del=$(req DELETE /kv/alpha)
    after=$(req GET /kv/alpha)
    del2=$(req DELETE /kv/alpha)
    echo "put=$put get=$get put2=$put2 get2=$get2 big=$big bigsame=$bigsame toolarge=$toolarge persist=$persist list=$list del=$del after=$after del2=$del2"
    ;;
reboot)
    # A migrated domain's console is logged under `<name>--incoming` (save-checks.sh).
    logs="/var/log/xen/console/guest-$NAME.log /var/log/xen/console/guest-$NAME--incoming.log"
    count() { cat $logs 2>/dev/null | grep -c "^$1"; }
    printf 'kept-across-reboot' > /tmp/vr
    put=$(req PUT /kv/reboot /tmp/vr)
    before=$($XL domid "$NAME" 2>/dev/null)
    serving=$(count 'APP serving')
    stopped=$(count 'APP stopped')
    $XL reboot "$NAME" > /tmp/xl-reboot.log 2>&1
    rc=$?
    i=0
    while [ "$(count 'APP serving')" -le "$serving" ] && [ $i -lt 600 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    after=$($XL domid "$NAME" 2>/dev/null)
    state=$($XL list "$NAME" 2>/dev/null | awk 'NR == 2 { print $5 }')
    req GET /kv/reboot > /dev/null; got=$(body)
    xllog=/var/log/xen/xl-$NAME.log
    codes=$(sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' "$xllog" 2>/dev/null | tr '\n' ',')
    [ -f "$xllog" ] && : > "$xllog"
    # A new domain: run-job.sh counts its time from now.
    touch /tmp/pvxen.recreated
    echo "rc=$rc put=$put before=${before:--} after=${after:--} state=${state:--}" \
        "stopped=$(( $(count 'APP stopped') - stopped )) serving=$(( $(count 'APP serving') - serving ))" \
        "get=${got:--} codes=${codes:--}"
    ;;
persist)
    req GET /kv/persist > /dev/null; persist=$(body)
    req GET /kv/big > /dev/null
    if [ "$(printf %s "$(body)" | sha256sum)" = "$(sha256sum < /tmp/big)" ]; then big=same; else big=differs; fi
    req GET /kv/ > /dev/null; list=$(body)
    echo "persist=$persist big=$big list=$list"
    ;;
churn)
    # One bash process: its /dev/tcp connections open one after another (a failed one is
    # skipped), then all close at once. A guest that stops answering would leave connects
    # waiting for TCP's own timeouts: after 90 s its state is the result.
    rm -f /tmp/churned
    timeout 90 bash -c 'exec 2>/dev/null
        n=0
        for i in $(seq 1 "$2"); do
            if exec {fd}<>"/dev/tcp/$1/80"; then fds[n]=$fd; n=$((n + 1)); fi
        done
        for fd in "${fds[@]}"; do exec {fd}>&-; done
        echo "$n" > /tmp/churned' churn "$ip" "$3"
    if [ -s /tmp/churned ]; then
        echo "opened=$(cat /tmp/churned) $(timed_get)"
    else
        echo "opened=none hung $(sh "$0" "$ip" diag pvguest)"
    fi
    ;;
slow-heads)
    # One bash process: $3 connections, each sent a head's first lines, then a header line a
    # second (never the blank line) for $4 seconds; a connection the service closed (its head
    # deadline) is opened again and starts over. Meanwhile GET / is timed once a second.
    rm -f /tmp/slow-opened /tmp/slow-reopened /tmp/slow-pid
    # A subshell's child, not a job of this shell (which would report its end if killed).
    ( bash -c 'exec >/dev/null 2>&1
        echo $$ > /tmp/slow-pid
        trap "" PIPE
        open() { exec {fd}<>"/dev/tcp/$1/80" && printf "GET / HTTP/1.1\r\nHost: guest\r\n" >&$fd; }
        n=0
        for i in $(seq 1 "$2"); do
            if open "$1"; then fds[n]=$fd; n=$((n + 1)); fi
        done
        echo "$n" > /tmp/slow-opened
        again=0; s=0
        end=$((SECONDS + $3))
        while [ "$SECONDS" -lt "$end" ]; do
            sleep 1
            s=$((s + 1))
            for i in "${!fds[@]}"; do
                if ! printf "X-Slow-%d: y\r\n" "$s" >&${fds[i]}; then
                    fd=${fds[i]}; exec {fd}>&-
                    if open "$1"; then fds[i]=$fd; again=$((again + 1)); fi
                fi
            done
        done
        echo "$again" > /tmp/slow-reopened' slow "$ip" "$3" "$4" & )
    while [ ! -s /tmp/slow-opened ]; do sleep 1; done
    # One timed GET a second while the clients trickle: how many answered, the slowest. A
    # trickle that has not ended 30 s after its time is a guest that stopped answering
    # (connects then wait for TCP's own timeouts): its state goes into the result.
    gets=0; ok=0; worst=0; hung=0
    end=$(( $(cut -d. -f1 /proc/uptime) + $4 + 30 ))
    while [ ! -s /tmp/slow-reopened ]; do
        if [ "$(cut -d. -f1 /proc/uptime)" -gt "$end" ]; then
            hung=1
            kill "$(cat /tmp/slow-pid)" 2>/dev/null
            break
        fi
        set -- $(timed_get)
        gets=$((gets + 1))
        ms=${2#ms=}
        [ "$1" = status=ok ] && ok=$((ok + 1))
        [ "$ms" -gt "$worst" ] && worst=$ms
        [ "$ms" -lt 1000 ] && sleep "0.$(printf %03d $((1000 - ms)))"
    done
    if [ "$hung" = 1 ]; then
        echo "opened=$(cat /tmp/slow-opened) gets=$gets ok=$ok worst_ms=$worst hung $(sh "$0" "$ip" diag pvguest)"
    else
        echo "opened=$(cat /tmp/slow-opened) reopened=$(cat /tmp/slow-reopened) gets=$gets ok=$ok worst_ms=$worst"
    fi
    ;;
bench)
    # ab -k against /files/index.html (read from the archive disk): three runs of $3 requests
    # over 16 connections, then one over 128 (more than a small guest's pool: a reclaimed
    # keep-alive connection is a failed request, and ab goes on, -r). Prints each run's
    # requests per second and its failures (numbers for the record, not judged).
    out=""
    for c in 16 16 16 128; do
        timeout 120 ab -k -r -s 20 -n "$3" -c "$c" "http://$ip/files/index.html" > /tmp/ab-bench.log 2>&1
        rps=$(awk '/^Requests per second/ {print $4}' /tmp/ab-bench.log)
        done_=$(awk '/^Complete requests/ {print $3}' /tmp/ab-bench.log)
        failed=$(awk '/^Failed requests/ {print $3}' /tmp/ab-bench.log)
        why=""
        # ab's last two lines: its error (e.g. `apr_socket_connect(): Connection refused` after
        # ten refused connects) and `Total of N requests completed`.
        [ -n "$rps" ] || why="($(grep -v '^$' /tmp/ab-bench.log | tail -n 2 | tr '\n' ' ' | tr ' ' '_'))"
        out="$out c$c=${rps:-none}rps/${done_:-0}done/${failed:-?}failed$why"
        # A guest that stopped answering altogether: its state, and no more runs.
        if [ -z "$rps" ] && ! timeout 5 wget -q -O /dev/null "http://$ip/"; then
            out="$out silent $(sh "$0" "$ip" diag pvguest)"
            break
        fi
    done
    echo "${out# }"
    ;;
head-range-etag)
    # Over nc, HTTP/1.0 (the service closes after each answer). `hreq METHOD PATH [HEADER]`
    # leaves the response in /tmp/resp and prints its status.
    hreq() {
        if [ -n "${3:-}" ]; then
            printf '%s %s HTTP/1.0\r\n%s\r\n\r\n' "$1" "$2" "$3"
        else
            printf '%s %s HTTP/1.0\r\n\r\n' "$1" "$2"
        fi | nc -w 10 "$ip" 80 > /tmp/resp
        head -n 1 /tmp/resp | cut -d' ' -f2
    }
    f=/files/index.html
    head=$(hreq HEAD $f); len=$(header_field content-length); etag=$(header_field etag); hbody=$(body_length)
    hreq GET $f > /dev/null; glen=$(header_field content-length); getag=$(header_field etag)
    range=$(hreq GET $f "Range: bytes=0-9"); rbody=$(body_length); crange=$(header_field content-range)
    unsat=$(hreq GET $f "Range: bytes=$len-")
    nm=$(hreq GET $f "If-None-Match: $etag")
    other=$(hreq GET $f 'If-None-Match: "not-this-one"')
    [ -n "$len" ] && [ "$len" = "$glen" ] && same=same || same="$len/$glen"
    [ -n "$etag" ] && [ "$etag" = "$getag" ] && tag=yes || tag=no
    [ "$crange" = "bytes 0-9/$len" ] && cr=ok || cr=$(echo "$crange" | tr ' ' '_')
    echo "head=$head head_body=$hbody length=$same etag=$tag range=$range range_body=$rbody content_range=$cr unsatisfiable=$unsat not_modified=$nm other_tag=$other"
    ;;
stall-prep)
    # A loop device on the image $3 and a device-mapper target `$4` over it, for a guest's
    # disk the harness can stall (`stalled`).
    modprobe dm-mod
    dev=$(losetup -f --show "$3") &&
        dmsetup create "$4" --noudevsync --verifyudev \
            --table "0 $(( $(stat -c %s "$3") / 512 )) linear $dev 0" &&
        [ -b "/dev/mapper/$4" ] && echo ok
    ;;
stalled)
    # A put acknowledged; the store's disk (device-mapper target $3) suspended; meanwhile a
    # put whose commit goes to the stalled disk (the service answers it 202 after its storage
    # deadline: it lands once the disk answers), half a second later a put of another key
    # that waits behind that commit (never begun: 503 after its deadline, never applied), and
    # GET / timed; the disk resumed; then what was acknowledged before the stall, the 202's
    # value (landed) and the 503's key (absent), read back.
    dm=$3
    printf 'acknowledged-before-the-stall' > /tmp/vsb
    printf 'put-during-the-stall' > /tmp/vsd
    before=$(req PUT /kv/stall-before /tmp/vsb)
    dmsetup suspend --noudevsync "$dm"
    stall_put() {
        bash -c 'start=${EPOCHREALTIME/./}
            { printf "PUT /kv/$2 HTTP/1.0\r\nContent-Length: 20\r\n\r\n"; cat /tmp/vsd; } |
                nc -w 60 "$1" 80 > /tmp/$2
            echo "$(( (${EPOCHREALTIME/./} - start) / 1000 ))" > /tmp/$2-ms' put "$ip" "$1" &
    }
    stall_put stall-during
    put=$!
    sleep 0.5
    stall_put stall-queued
    queued=$!
    sleep 0.5
    set -- $(timed_get)
    during_get=${1#status=}; during_get_ms=${2#ms=}
    wait $put $queued
    put_status=$(head -n 1 /tmp/stall-during | cut -d' ' -f2)
    queued_status=$(head -n 1 /tmp/stall-queued | cut -d' ' -f2)
    dmsetup resume --noudevsync "$dm"
    req GET /kv/stall-before > /dev/null
    if [ "$(body)" = acknowledged-before-the-stall ]; then after=same; else after=differs; fi
    if [ "$(req GET /kv/stall-during)" = 200 ] && [ "$(body)" = put-during-the-stall ]; then
        landed=yes; else landed=no; fi
    absent=$(req GET /kv/stall-queued)
    req GET /kv/persist > /dev/null; persist=$(body)
    echo "before=$before get=$during_get get_ms=$during_get_ms put=$put_status put_ms=$(cat /tmp/stall-during-ms) queued=$queued_status queued_ms=$(cat /tmp/stall-queued-ms) landed=$landed queued_after=$absent after=$after persist=$persist"
    ;;
stack)
    got=$(timeout 10 wget -q -O - "http://$ip/" | sed -n 's/.*"stack":{"size":\([0-9]*\),"peak":\([0-9]*\),"serve_peak":\([0-9]*\),"serve_base":\([0-9]*\),"rsp0_size":\([0-9]*\),"rsp0_peak":\([0-9]*\)}.*/size=\1 peak=\2 serve_peak=\3 serve_base=\4 rsp0_size=\5 rsp0_peak=\6/p')
    echo "${got:-none}"
    ;;
diag)
    # The guest's state as dom0 sees it, on one line: xl's state letters, and its
    # RIP three times, a second apart, and its CPU seconds before and after (a guest
    # spinning shows RIPs that move and CPU time that grows).
    d=$($XL domid "$3" 2>/dev/null)
    state=$($XL list "$3" 2>/dev/null | awk 'NR == 2 { print $5 }')
    cpu0=$($XL list "$3" 2>/dev/null | awk 'NR == 2 { print $6 }')
    regs=""
    for s in 1 2 3; do
        regs="$regs $(xen-hvmctx "$d" 2>&1 | tr -s ' \n\t' ' ' | grep -o 'rip [0-9a-fx]*' | head -n 1 | tr ' ' '=')"
        sleep 1
    done
    cpu1=$($XL list "$3" 2>/dev/null | awk 'NR == 2 { print $6 }')
    echo "domid=${d:-none} state=${state:-none} cpu_s=${cpu0:-?}..${cpu1:-?}$regs"
    ;;
*)
    echo "unknown check $2"
    ;;
esac
