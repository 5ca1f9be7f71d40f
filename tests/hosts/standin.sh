#!/bin/sh
# A stand-in for one bare-metal host, for fleetward's tests. It keeps the host's state in a
# directory and answers the commands a rollout sends: `uname -r`, the boot id, kernel install,
# default boot entry, reboot (a new boot id, unreachable for a moment) and metrics.
#
# Usage: standin.sh --state DIR, with the command in SSH_ORIGINAL_COMMAND (as sshd's
# ForceCommand passes it, shell-quoted) or as the remaining arguments.
#
# Faults, by files in the state directory: `fault-unreachable` (always down),
# `fault-never-up` (down for good after a reboot), `fault-hang-NAME` (command NAME hangs).
# Exit 255 means "unreachable", as ssh reports a connection failure.

set -u
[ "${1:-}" = "--state" ] || { echo "usage: standin.sh --state DIR [COMMAND...]" >&2; exit 2; }
STATE=$2
shift 2
if [ $# -eq 0 ]; then
    # Parse the shell-quoted command line the client sent, without running it as shell code:
    # quoting has already neutralised every metacharacter, so `eval set --` only splits words.
    eval "set -- ${SSH_ORIGINAL_COMMAND:-}"
fi
mkdir -p "$STATE"
now=$(date +%s)

down() { echo "ssh: connect to host: Connection refused" >&2; exit 255; }
[ -e "$STATE/fault-unreachable" ] && down
if [ -e "$STATE/down-until" ]; then
    until=$(cat "$STATE/down-until")
    [ -e "$STATE/fault-never-up" ] && down
    [ "$now" -lt "$until" ] && down
    rm -f "$STATE/down-until"
fi
[ -e "$STATE/kernel" ] || echo "${STANDIN_KERNEL:-6.8.0-40-generic}" > "$STATE/kernel"
[ -e "$STATE/boot_id" ] || echo "boot-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')" > "$STATE/boot_id"
echo "$now $*" >> "$STATE/commands.log"

name=${1:-}
if [ -e "$STATE/fault-hang-$name" ]; then
    # Hang until the fault is lifted or the test's state is gone.
    while [ -e "$STATE/fault-hang-$name" ]; do sleep 0.2; done
    exit 1
fi

case "$name" in
    uname)
        cat "$STATE/kernel" ;;
    boot-id)
        cat "$STATE/boot_id" ;;
    install-kernel)
        [ $# -eq 2 ] || { echo "install-kernel VERSION" >&2; exit 2; }
        echo "$2" >> "$STATE/installed"
        echo "installed $2" ;;
    set-default-boot)
        [ $# -eq 2 ] || { echo "set-default-boot VERSION" >&2; exit 2; }
        grep -qxF -- "$2" "$STATE/installed" 2>/dev/null || { echo "kernel $2 is not installed" >&2; exit 1; }
        echo "$2" > "$STATE/default"
        echo "default boot entry: $2" ;;
    reboot)
        [ -e "$STATE/default" ] && cp "$STATE/default" "$STATE/kernel"
        echo "boot-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')" > "$STATE/boot_id"
        echo "$now" >> "$STATE/reboots"
        echo $((now + ${STANDIN_REBOOT_SECS:-2})) > "$STATE/down-until"
        echo "rebooting" ;;
    metrics)
        echo "cpu_util_pct 41.5"
        echo "io_latency_p99_ms 12.1" ;;
    echo)
        shift
        printf '%s\n' "$@" ;;
    *)
        echo "unknown command: $name" >&2
        exit 127 ;;
esac
