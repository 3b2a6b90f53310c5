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
ip=$1
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
*)
    echo "unknown check $2"
    ;;
esac
