# fleetward checks: the host side of the built-in validation checks, arguments as data.
# Run as `sh -c SCRIPT fleetward-check KIND ARGS…`:
#   units [UNIT]...        failed units, and the state of each named unit
#   http URL SECONDS       fetch URL from this host with curl (or wget)
#   benchmark REPEAT DIR MB PEER PORT SUITE...
#                          REPEAT rounds of the suites (cpu, memory, disk, network); disk on a
#                          temporary file of MB MiB in DIR, removed at exit; network to PEER
# Prints `fleetward-check 1`, then one record a line:
#   failed UNIT | unit NAME STATE | status CODE | tool NAME | body (the rest is the body)
#   bench METRIC VALUE TOOL    one benchmark measurement (MB/s, or Mbit/s for network)
#   missing WHAT REASON    what could not be checked, and why (a check never passes on it)
echo "fleetward-check 1"
kind=${1:-}
[ $# -gt 0 ] && shift
case "$kind" in
    units)
        if ! command -v systemctl > /dev/null 2>&1; then echo "missing units no systemctl on this host"; exit 0; fi
        if ! out=$(systemctl list-units --state=failed --no-legend --plain --no-pager 2>&1); then
            echo "missing units $(printf '%s' "$out" | head -n 1)"; exit 0
        fi
        printf '%s\n' "$out" | awk 'NF { print "failed", $1 }'
        for u in "$@"; do
            s=$(systemctl is-active -- "$u" 2> /dev/null | head -n 1)
            echo "unit $u ${s:-unknown}"
        done ;;
    http)
        url=${1:-} secs=${2:-10}
        if command -v curl > /dev/null 2>&1; then
            echo "tool curl"
            tmp=$(mktemp) || { echo "missing http cannot make a temporary file"; exit 0; }
            if code=$(curl -sS -o "$tmp" -w '%{http_code}' --max-time "$secs" -- "$url" 2> "$tmp.err"); then
                echo "status $code"; echo body; head -c 4096 "$tmp"
            else
                echo "missing http $(tail -n 1 "$tmp.err")"
            fi
            rm -f "$tmp" "$tmp.err"
        elif command -v wget > /dev/null 2>&1; then
            echo "tool wget"
            tmp=$(mktemp) || { echo "missing http cannot make a temporary file"; exit 0; }
            hdr=$(wget -S -q -O "$tmp" -T "$secs" -t 1 -- "$url" 2>&1)
            code=$(printf '%s\n' "$hdr" | awk '$1 ~ /^HTTP\// { c = $2 } END { print c }')
            if [ -n "$code" ]; then echo "status $code"; echo body; head -c 4096 "$tmp"
            else echo "missing http $(printf '%s' "$hdr" | tail -n 1) (wget got no response)"; fi
            rm -f "$tmp"
        else
            echo "missing http neither curl nor wget on this host"
        fi ;;
    benchmark)
        reps=${1:-3} dir=${2:-/var/tmp} mb=${3:-256} peer=${4:-} port=${5:-5201}
        if [ $# -ge 5 ]; then shift 5; else shift $#; fi
        # MB/s from dd's summary line (GNU and busybox both print `N bytes ... copied, S s`).
        rate() { awk '/copied/ { b = $1; for (i = 1; i <= NF; i++) if ($i == "copied,") s = $(i + 1) }
                      END { if (s + 0 > 0) printf "%.6g\n", b / s / 1e6 }'; }
        f=""
        trap 'rm -f "$f"' EXIT
        trap 'rm -f "$f"; exit 1' HUP INT TERM
        cpu_tool=sha256sum
        for s in "$@"; do
            case "$s" in
                cpu)
                    command -v openssl > /dev/null 2>&1 && cpu_tool=openssl
                    if [ "$cpu_tool" = sha256sum ] && ! command -v sha256sum > /dev/null 2>&1; then
                        echo "missing cpu neither openssl nor sha256sum on this host"; exit 0
                    fi ;;
                memory) ;;
                disk)
                    if ! [ -d "$dir" ] || ! [ -w "$dir" ]; then echo "missing disk \`$dir\` is not a writable directory"; exit 0; fi
                    f=$(mktemp "$dir/fleetward-bench.XXXXXX") || { echo "missing disk cannot make a file in \`$dir\`"; exit 0; }
                    command -v fio > /dev/null 2>&1 ||
                        echo "note disk fio is not installed on this host: dd instead, without random-read latencies" ;;
                network)
                    if [ -z "$peer" ]; then echo "missing network no peer named"; exit 0; fi
                    if ! command -v iperf3 > /dev/null 2>&1; then echo "missing network iperf3 is not installed on this host"; exit 0; fi ;;
                *) echo "missing $s unknown benchmark suite"; exit 0 ;;
            esac
        done
        r=0
        while [ "$r" -lt "$reps" ]; do
            r=$((r + 1))
            for s in "$@"; do
                case "$s" in
                    cpu)
                        v=""
                        if [ "$cpu_tool" = openssl ]; then
                            v=$(openssl speed -mr -seconds 1 -bytes 16384 -elapsed sha256 2> /dev/null |
                                awk -F: '$1 == "+F" { printf "%.6g\n", $4 / 1e6 }')
                            # An openssl without `-seconds` or sha256: the fallback, from the start.
                            [ -n "$v" ] || [ "$r" -gt 1 ] || cpu_tool=sha256sum
                        fi
                        if [ "$cpu_tool" = sha256sum ]; then
                            v=$({ dd if=/dev/zero bs=1048576 count=256 | sha256sum > /dev/null; } 2>&1 | rate)
                        fi
                        [ -n "$v" ] || { echo "missing cpu $cpu_tool printed no rate"; exit 0; }
                        echo "bench bench_cpu_sha256_mbps $v $cpu_tool" ;;
                    memory)
                        v=$(dd if=/dev/zero of=/dev/null bs=67108864 count=64 2>&1 | rate)
                        [ -n "$v" ] || { echo "missing memory dd printed no rate"; exit 0; }
                        echo "bench bench_mem_fill_mbps $v dd" ;;
                    disk)
                        if command -v fio > /dev/null 2>&1; then
                            for rw in write read; do
                                o=$(fio --name=fleetward --filename="$f" --size="${mb}M" --bs=1M --rw="$rw" --direct=1 \
                                    --ioengine=psync --end_fsync=1 --output-format=terse --terse-version=3 2>&1)
                                v=$(printf '%s\n' "$o" | awk -F';' -v rw="$rw" 'NF > 100 { printf "%.6g\n", (rw == "write" ? $48 : $7) * 1024 / 1e6 }')
                                [ -n "$v" ] || { echo "missing disk fio: $(printf '%s' "$o" | tail -n 1)"; exit 0; }
                                echo "bench bench_disk_${rw}_mbps $v fio"
                            done
                            # Random 4 KiB direct reads of that file for 1 s: completion latency
                            # percentiles (terse fields 18-37 are the read side's, in µs).
                            o=$(fio --name=fleetward --filename="$f" --size="${mb}M" --bs=4k --rw=randread --direct=1 \
                                --ioengine=psync --runtime=1 --time_based --percentile_list=50:99 \
                                --output-format=terse --terse-version=3 2>&1)
                            lat=$(printf '%s\n' "$o" | awk -F';' 'NF > 100 {
                                for (i = 18; i <= 37; i++) { split($i, kv, "=")
                                    if (kv[1] ~ /^50(\.0*)?%$/) p50 = kv[2]; if (kv[1] ~ /^99(\.0*)?%$/) p99 = kv[2] }
                                if (p50 + 0 > 0 && p99 + 0 > 0) print p50, p99 }')
                            [ -n "$lat" ] || { echo "missing disk fio random read: $(printf '%s' "$o" | tail -n 1)"; exit 0; }
                            echo "bench bench_disk_randread_p50_us ${lat% *} fio"
                            echo "bench bench_disk_randread_p99_us ${lat#* } fio"
                        else
                            o=$(dd if=/dev/zero of="$f" bs=1048576 count="$mb" oflag=direct conv=fsync 2>&1) ||
                                { echo "missing disk direct I/O in \`$dir\` failed: $(printf '%s' "$o" | tail -n 1)"; exit 0; }
                            echo "bench bench_disk_write_mbps $(printf '%s\n' "$o" | rate) dd"
                            o=$(dd if="$f" of=/dev/null bs=1048576 iflag=direct 2>&1) ||
                                { echo "missing disk direct I/O in \`$dir\` failed: $(printf '%s' "$o" | tail -n 1)"; exit 0; }
                            echo "bench bench_disk_read_mbps $(printf '%s\n' "$o" | rate) dd"
                        fi ;;
                    network)
                        o=$(iperf3 -c "$peer" -p "$port" -t 2 -f m 2>&1)
                        v=$(printf '%s\n' "$o" | awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { if (v != "") print v }')
                        [ -n "$v" ] || { echo "missing network iperf3 to $peer:$port: $(printf '%s' "$o" | tail -n 1)"; exit 0; }
                        echo "bench bench_net_mbps $v iperf3" ;;
                esac
            done
        done ;;
    *)
        echo "missing check unknown check \`$kind\`"; exit 2 ;;
esac
