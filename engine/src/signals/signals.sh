# fleetward signals: one collection of a host's signals, read from /proc in one round trip.
# Run as `sh -c SCRIPT fleetward-signals WINDOW SINCE [-d DEVICE]... [-i INTERFACE]...`:
# WINDOW seconds of one-second readings; kernel-log lines counted from epoch SINCE (0: the
# whole boot). Without -d, every block device with a backing device (no loop, ram, zram, dm);
# without -i, every interface with a backing device (all but `lo` when none has one).
# Prints, one record a line (fleetward's parser turns them into samples):
#   fleetward-signals 1            the protocol version
#   boot_id ID | btime EPOCH | now EPOCH
#   @ UPTIME                       a reading starts (seconds since boot, from /proc/uptime)
#   cpu USER NICE SYSTEM IDLE IOWAIT IRQ SOFTIRQ STEAL     the `cpu` line of /proc/stat
#   disk NAME READS READ_MS WRITES WRITE_MS                 /proc/diskstats
#   net NAME RX_BYTES TX_BYTES                              /proc/net/dev
#   psi RESOURCE some|full TOTAL_US                         /proc/pressure, first and last reading
#   mem TOTAL_KB AVAILABLE_KB                               /proc/meminfo
#   klog SOURCE CLASS COUNT        kernel-log lines of a class since SINCE (journal or dmesg)
#   units_failed COUNT             failed systemd units
#   missing WHAT REASON            something that could not be read
# Paths are read under ${FLEETWARD_PROC:-/proc} and ${FLEETWARD_SYS:-/sys}, for fixtures.
P=${FLEETWARD_PROC:-/proc}
S=${FLEETWARD_SYS:-/sys}
window=${1:-}
since=${2:-0}
case "$window" in ''|*[!0-9]*) echo "missing window bad window \`$window\`"; exit 2 ;; esac
case "$since" in ''|*[!0-9]*) echo "missing since bad epoch \`$since\`"; exit 2 ;; esac
shift 2
devs="" ifs=""
while [ $# -gt 0 ]; do
    case "$1" in
        -d) devs="$devs ${2:-}"; shift 2 ;;
        -i) ifs="$ifs ${2:-}"; shift 2 ;;
        *) echo "missing argument unknown argument \`$1\`"; exit 2 ;;
    esac
done
if [ -z "$devs" ]; then
    for d in "$S"/block/*; do [ -e "$d/device" ] && devs="$devs ${d##*/}"; done
fi
if [ -z "$ifs" ]; then
    for d in "$S"/class/net/*; do [ -e "$d/device" ] && ifs="$ifs ${d##*/}"; done
    [ -n "$ifs" ] || ifs=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") printf " %s", $1 }' "$P/net/dev")
fi
echo "fleetward-signals 1"
if read -r id < "$P/sys/kernel/random/boot_id"; then echo "boot_id $id"; else echo "missing boot_id cannot read boot_id"; fi
awk '$1 == "btime" { print "btime", $2 }' "$P/stat"

reading() {
    read -r up _ < "$P/uptime"
    echo "@ $up"
    awk '$1 == "cpu" { print "cpu", $2, $3, $4, $5, $6, $7, $8, $9; exit }' "$P/stat"
    awk -v want="$devs" 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 }
        ($3 in k) { print "disk", $3, $4, $7, $8, $11 }' "$P/diskstats"
    awk -v want="$ifs" 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 }
        NR > 2 { sub(/^ +/, ""); c = index($0, ":"); name = substr($0, 1, c - 1)
                 split(substr($0, c + 1), f, " "); if (name in k) print "net", name, f[1], f[9] }' "$P/net/dev"
    if [ "$1" = edge ]; then
        for r in cpu memory io; do
            [ -r "$P/pressure/$r" ] && awk -v r="$r" '{ split($5, t, "="); print "psi", r, $1, t[2] }' "$P/pressure/$r"
        done
    fi
}
reading edge
i=1
while [ "$i" -lt "$window" ]; do sleep 1; reading mid; i=$((i + 1)); done
if [ "$window" -gt 0 ]; then sleep 1; reading edge; fi
awk '$1 == "MemTotal:" { t = $2 } $1 == "MemAvailable:" { a = $2 } END { print "mem", t, a }' "$P/meminfo"
echo "now $(date +%s)"

# Kernel-log classes; one pass over the log counts them all.
klog_count() {
    awk -v src="$1" '
        /Kernel panic/ { c["panic"]++ }
        /Oops:|general protection fault/ { c["oops"]++ }
        /BUG:/ { c["bug"]++ }
        /soft lockup|hard LOCKUP/ { c["soft_lockup"]++ }
        /blocked for more than [0-9]+ seconds/ { c["hung_task"]++ }
        /[Mm]achine [Cc]heck|mce: |EDAC .*(CE|UE)|[Hh]ardware [Ee]rror/ { c["mce"]++ }
        /I\/O error|critical medium error|blk_update_request/ { c["io_error"]++ }
        END { n = split("panic oops bug soft_lockup hung_task mce io_error", k, " ")
              for (i = 1; i <= n; i++) print "klog", src, k[i], c[k[i]] + 0 }'
}
if command -v journalctl > /dev/null 2>&1 && [ -n "$(journalctl -k -b -q --no-pager -n 1 2> /dev/null)" ]; then
    if [ "$since" -gt 0 ]; then journalctl -k -b -q --no-pager --since "@$since" 2> /dev/null
    else journalctl -k -b -q --no-pager 2> /dev/null; fi | klog_count journal
elif out=$(dmesg 2> /dev/null) && [ -n "$out" ]; then
    bt=$(awk '$1 == "btime" { print $2 }' "$P/stat")
    printf '%s\n' "$out" | awk -v from=$((since - ${bt:-0})) '
        { t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t); if (t + 0 >= from) print }' | klog_count dmesg
else
    echo "missing klog neither journalctl -k nor dmesg can be read"
fi
if ! command -v systemctl > /dev/null 2>&1; then
    echo "missing units no systemctl"
elif out=$(systemctl list-units --state=failed --no-legend --plain --no-pager 2>&1); then
    printf '%s\n' "$out" | awk 'NF { n++ } END { print "units_failed", n + 0 }'
else
    echo "missing units $(printf '%s' "$out" | head -n 1)"
fi
