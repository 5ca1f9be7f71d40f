#!/bin/sh
# A BMC stand-in for out-of-band recovery tests: `bmc.sh --state DIR chassis power cycle`
# power-cycles the stand-in host whose state directory is DIR, as `ipmitool … chassis power
# cycle` would a real one. It runs on the controller, not on the host.
#
# Each call is logged to DIR/power-cycles. `fault-bmc-fails` in DIR makes the BMC refuse
# (exit 1). A host with `fault-recover-fixes` comes back: the one-shot boot entry was spent by
# the boot that hung, so it boots its default entry (or, with none, the kernel it first ran);
# any other host stays as it was (`fault-never-up` keeps it down).
set -u
[ "${1:-}" = "--state" ] && [ $# -ge 2 ] || { echo "usage: bmc.sh --state DIR chassis power cycle" >&2; exit 2; }
STATE=$2
shift 2
[ "$*" = "chassis power cycle" ] || { echo "bmc.sh: unsupported command: $*" >&2; exit 2; }
[ -d "$STATE" ] || { echo "Error: Unable to establish IPMI v2 / RMCP+ session" >&2; exit 1; }
now=$(date +%s)
echo "$now chassis power cycle" >> "$STATE/power-cycles"
chmod a+rw "$STATE/power-cycles"
if [ -e "$STATE/fault-bmc-fails" ]; then
    echo "Error: Unable to establish IPMI v2 / RMCP+ session" >&2
    exit 1
fi
if [ -e "$STATE/fault-recover-fixes" ]; then
    rm -f "$STATE/fault-never-up" "$STATE/next"
    rm -rf "$STATE/run"
    if [ -e "$STATE/default" ]; then
        cat "$STATE/default" > "$STATE/kernel"
    elif [ -e "$STATE/installed" ]; then
        head -n 1 "$STATE/installed" > "$STATE/kernel"
    fi
    echo "boot-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')" > "$STATE/boot_id"
    echo $((now + 2)) > "$STATE/down-until"
    chmod a+rw "$STATE/kernel" "$STATE/boot_id" "$STATE/down-until"
fi
echo "Chassis Power Control: Cycle"
