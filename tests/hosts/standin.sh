#!/bin/sh
# A stand-in for one bare-metal host, for fleetward's tests. It keeps the host's state in a
# directory and answers the commands a rollout sends: `uname -r`, the boot id, kernel install,
# default boot entry, reboot (a new boot id, unreachable for a moment) and metrics. It speaks
# the same commands as the shipped `rollout.rhai` and the simulator:
#   uname -r | cat /proc/sys/kernel/random/boot_id | apt-get install -y linux-image-V
#   grub-set-default 'Advanced options for Ubuntu>Ubuntu, with Linux V' (the default entry) |
#   grub-reboot '…' (the next boot only) | grub-editenv list | systemctl reboot
#   systemctl is-system-running | lbctl drain|undrain NAME | fleetward-validate SUITE
#   fleetward-metrics --window SECS (the site-agent form of `signals()`)
#   sh -c SCRIPT fleetward-signals ARGS… (the signals collector) and
#   sh -c SCRIPT fleetward-check units|http|benchmark ARGS… (the built-in checks; benchmark
#   runs the real script on this machine)
# and the short forms older tests use (uname, boot-id, install-kernel, set-default-boot, reboot).
#
# Usage: standin.sh --state DIR, with the command in SSH_ORIGINAL_COMMAND (as sshd's
# ForceCommand passes it, shell-quoted) or as the remaining arguments.
#
# For drift, the host's files live under STATE/root (the facts script reads them there through
# FLEETWARD_ROOT), packages in root/var/lib/standin/packages (`name version` lines) and
# services in root/var/lib/standin/services (`name enabled-state active-state` lines). It
# answers `sh -c SCRIPT ARGS…` (the facts script, the sysctl persister) with FLEETWARD_ROOT set
# and `dpkg-query`/`systemctl` shims first on PATH, and the fix commands of `drift.rhai`:
#   sysctl -w KEY=VALUE | systemctl start|enable -- NAME | modprobe -- NAME
#   chmod MODE -- PATH | apt-get install -y --no-install-recommends PKG=VERSION
#
# Faults, by files in the state directory: `fault-unreachable` (always down),
# `fault-never-up` (down for good after a reboot), `fault-boot-fallback` (a one-shot boot set by
# `grub-reboot` fails and the default entry boots instead), `fault-hang-NAME` (command NAME hangs),
# `fault-validate-SUITE` (that validation suite fails), `fault-fail-NAME` (command NAME exits 1),
# `fault-klog-CLASS` (the kernel log holds a line of that class once the host runs the kernel it
# was told to boot), `fault-late-klog-panic` (a panic the post-check's look at the log misses
# and the bake's see), `fault-unit-failed-UNIT` and
# `fault-unit-inactive-UNIT` (systemd says so), `fault-without-TOOL` (the benchmark runs on a
# PATH without TOOL, as on a host where it is not installed); `real-signals` runs the real collector on this
# machine's /proc, with `dmesg-fixture` as the kernel log when that file exists. A file `regress` with `metric factor`
# lines scales those metrics (and `bench_*` benchmark results) once the host runs the kernel it was told to boot.
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
# The kernel it first runs is installed: a rollback boots it again.
[ -e "$STATE/installed" ] || cp "$STATE/kernel" "$STATE/installed"
[ -e "$STATE/boot_id" ] || echo "boot-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')" > "$STATE/boot_id"
# The one-shot reboot wrapper is logged as the command it wraps.
if [ "${1:-}" = sh ] && [ "${4:-}" = fleetward-reboot-once ]; then
    echo "$now $(shift 5; echo "$*") (one-shot ${5:-})" >> "$STATE/commands.log"
elif [ "${1:-}" = sh ] && [ "${2:-}" = -c ] && [ $# -ge 4 ]; then
    # A fixed script with its arguments: logged on one line as `sh -c NAME ARGS…`.
    echo "$now sh -c $(shift 3; echo "$*")" >> "$STATE/commands.log"
else
    echo "$now $*" >> "$STATE/commands.log"
fi

name=${1:-}
if [ -e "$STATE/fault-hang-$name" ]; then
    # Hang until the fault is lifted or the test's state is gone.
    while [ -e "$STATE/fault-hang-$name" ]; do sleep 0.2; done
    exit 1
fi

if [ -e "$STATE/fault-fail-$name" ]; then
    echo "$name: injected failure" >&2
    exit 1
fi

R="$STATE/root"
LIB="$R/var/lib/standin"
# The kernel and boot entry the host runs, where the facts script reads them.
sync_root() {
    mkdir -p "$R/proc/sys/kernel" "$R/boot/grub" "$LIB" "$STATE/shims"
    cp "$STATE/kernel" "$R/proc/sys/kernel/osrelease"
    if [ -e "$STATE/default" ]; then
        printf 'saved_entry=Advanced options for Ubuntu>Ubuntu, with Linux %s\n' "$(cat "$STATE/default")" > "$R/boot/grub/grubenv"
    fi
    [ -x "$STATE/shims/dpkg-query" ] || cat > "$STATE/shims/dpkg-query" <<EOS
#!/bin/sh
# dpkg-query -W -f=FORMAT -- NAME
for n; do :; done
v=\$(awk -v p="\$n" '\$1 == p { print \$2 }' "$LIB/packages" 2>/dev/null)
[ -n "\$v" ] || exit 1
printf 'ii %s' "\$v"
EOS
    [ -x "$STATE/shims/systemctl" ] || cat > "$STATE/shims/systemctl" <<EOS
#!/bin/sh
# systemctl is-enabled|is-active -- NAME
op=\$1; for n; do :; done
case "\$op" in is-enabled) f=2 ;; is-active) f=3 ;; *) exit 1 ;; esac
awk -v s="\$n" -v f="\$f" '\$1 == s { print \$f; found = 1 } END { exit !found }' "$LIB/services" 2>/dev/null
EOS
    chmod +x "$STATE/shims/dpkg-query" "$STATE/shims/systemctl"
}
# Sets column COL of NAME's line in FILE to VALUE (adding the line when missing).
set_field() {
    file=$1 key=$2 col=$3 value=$4
    touch "$file"
    awk -v k="$key" -v c="$col" -v v="$value" '
        $1 == k { $c = v; found = 1 } { print }
        END { if (!found) { line = k; for (i = 2; i < c; i++) line = line " -"; print line " " v } }' "$file" > "$file.tmp"
    cat "$file.tmp" > "$file" && rm -f "$file.tmp"
}

install() {
    echo "$1" >> "$STATE/installed"
    echo "installed $1"
}
set_default() {
    grep -qxF -- "$1" "$STATE/installed" 2>/dev/null || { echo "kernel $1 is not installed" >&2; exit 1; }
    echo "$1" > "$STATE/default"
    echo "$1" > "$STATE/told"
    echo "default boot entry: $1"
}
set_next() {
    grep -qxF -- "$1" "$STATE/installed" 2>/dev/null || { echo "kernel $1 is not installed" >&2; exit 1; }
    echo "$1" > "$STATE/next"
    echo "$1" > "$STATE/told"
    echo "next boot entry: $1"
}
reboot_now() {
    # /dev/shm is empty after a boot: so are the one-shot reboot markers.
    rm -rf "$STATE/run"
    # A one-shot entry boots once; one that fails falls back to the default.
    if [ -e "$STATE/next" ] && [ ! -e "$STATE/fault-boot-fallback" ]; then
        cp "$STATE/next" "$STATE/kernel"
    elif [ -e "$STATE/default" ]; then
        cp "$STATE/default" "$STATE/kernel"
    fi
    rm -f "$STATE/next"
    echo "boot-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')" > "$STATE/boot_id"
    echo "$now" >> "$STATE/reboots"
    echo $((now + ${STANDIN_REBOOT_SECS:-2})) > "$STATE/down-until"
    echo "rebooting"
}
# Samples every 10 s over the window, each metric at its level with uniform +-8% noise.
metrics() {
    window=$1
    scale=""
    if [ -e "$STATE/regress" ] && [ -e "$STATE/told" ] && cmp -s "$STATE/told" "$STATE/kernel"; then
        scale=$(cat "$STATE/regress")
    fi
    n=$((window / 10)); [ "$n" -ge 1 ] || n=1
    # Noise from /dev/urandom (16-bit draws), not awk's rand(): some awks seed it poorly.
    { printf '%s\n--\n' "$scale"; od -An -v -N$((n * 10)) -tu2 /dev/urandom; } | awk -v now="$now" -v n="$n" '
        !sep { if ($0 == "--") sep = 1; else if (NF == 2) f[$1] = $2; next }
        { for (i = 1; i <= NF; i++) u[k++] = $i / 65536 }
        END {
            split("cpu_util_pct:40 mem_used_pct:60 io_latency_p99_ms:12 net_throughput_mbps:900 app_error_rate:0.004", ms, " ")
            k = 0
            for (i = 1; i <= 5; i++) {
                split(ms[i], kv, ":"); m = kv[1]; level = kv[2]
                s = (m in f) ? f[m] : 1
                for (j = 0; j < n; j++)
                    printf "%d %s %.9g\n", now - (n - 1 - j) * 10, m, level * s * (0.92 + 0.16 * u[k++])
            }
        }'
}

case "$name" in
    uname)
        cat "$STATE/kernel" ;;
    cat)
        [ "${2:-}" = /proc/sys/kernel/random/boot_id ] || { echo "cat: ${2:-}: No such file" >&2; exit 1; }
        cat "$STATE/boot_id" ;;
    boot-id)
        cat "$STATE/boot_id" ;;
    install-kernel)
        [ $# -eq 2 ] || { echo "install-kernel VERSION" >&2; exit 2; }
        install "$2" ;;
    apt-get)
        if [ $# -eq 5 ] && [ "$4" = --no-install-recommends ]; then
            case "$5" in
                *=*) set_field "$LIB/packages" "${5%%=*}" 2 "${5#*=}"; echo "Setting up ${5%%=*} (${5#*=})"; exit 0 ;;
            esac
        fi
        [ $# -eq 4 ] && [ "$2" = install ] && [ "$3" = -y ] || { echo "usage: apt-get install -y PACKAGE" >&2; exit 100; }
        case "$4" in
            linux-image-*) install "${4#linux-image-}" ;;
            *) echo "E: Unable to locate package $4" >&2; exit 100 ;;
        esac ;;
    set-default-boot)
        [ $# -eq 2 ] || { echo "set-default-boot VERSION" >&2; exit 2; }
        set_default "$2" ;;
    grub-set-default)
        [ $# -eq 2 ] || { echo "usage: grub-set-default ENTRY" >&2; exit 2; }
        prefix="Advanced options for Ubuntu>Ubuntu, with Linux "
        case "$2" in
            "$prefix"*) set_default "${2#"$prefix"}" ;;
            *) echo "no boot entry \`$2'" >&2; exit 1 ;;
        esac ;;
    grub-reboot)
        [ $# -eq 2 ] || { echo "usage: grub-reboot ENTRY" >&2; exit 2; }
        prefix="Advanced options for Ubuntu>Ubuntu, with Linux "
        case "$2" in
            "$prefix"*) set_next "${2#"$prefix"}" ;;
            *) echo "no boot entry \`$2'" >&2; exit 1 ;;
        esac ;;
    grub-editenv)
        [ "${2:-}" = list ] || { echo "usage: grub-editenv list" >&2; exit 2; }
        prefix="Advanced options for Ubuntu>Ubuntu, with Linux "
        if [ -e "$STATE/default" ]; then d=$(cat "$STATE/default"); else d=$(cat "$STATE/kernel"); fi
        echo "saved_entry=$prefix$d"
        [ -e "$STATE/next" ] && echo "next_entry=$prefix$(cat "$STATE/next")"
        exit 0 ;;
    reboot)
        reboot_now ;;
    systemctl)
        case "${2:-}" in
            reboot) reboot_now ;;
            is-system-running) echo running ;;
            start) set_field "$LIB/services" "$4" 3 active ;;
            enable) set_field "$LIB/services" "$4" 2 enabled ;;
            *) echo "systemctl: unknown operation ${2:-}" >&2; exit 1 ;;
        esac ;;
    lbctl)
        [ $# -eq 3 ] || { echo "usage: lbctl drain|undrain NAME" >&2; exit 2; }
        echo "$now $2 $3" >> "$STATE/lb.log"
        echo ok ;;
    fleetward-validate)
        if [ -e "$STATE/fault-validate-${2:-}" ]; then echo "${2:-}: FAILED"; exit 1; fi
        echo "${2:-}: pass" ;;
    fleetward-metrics)
        [ "${2:-}" = --window ] || { echo "usage: fleetward-metrics --window SECS" >&2; exit 2; }
        metrics "${3:-300}" ;;
    metrics)
        metrics 300 ;;
    sh)
        # The signals collector: this machine's real /proc when the test asks for it (file
        # `real-signals`), else the host's metrics as direct samples, its boot id, and the
        # kernel-log classes named by `fault-klog-CLASS` files counted once each (on the new
        # kernel).
        if [ "${4:-}" = fleetward-signals ]; then
            if [ -e "$STATE/real-signals" ]; then
                # This machine's /proc, with the boot id of the host the stand-in plays.
                # A `dmesg-fixture` file stands for the kernel log where the login user
                # cannot read the machine's own (dmesg_restrict, no journal access).
                script=$3; shift 3
                if [ -e "$STATE/dmesg-fixture" ]; then
                    mkdir -p "$STATE/klog-shim"
                    printf '#!/bin/sh\ncat "%s"\n' "$STATE/dmesg-fixture" > "$STATE/klog-shim/dmesg"
                    printf '#!/bin/sh\nexit 0\n' > "$STATE/klog-shim/journalctl"
                    chmod +x "$STATE/klog-shim/dmesg" "$STATE/klog-shim/journalctl"
                    PATH="$STATE/klog-shim:$PATH"
                fi
                sh -c "$script" "$@" | awk -v id="$(cat "$STATE/boot_id")" '$1 == "boot_id" { $2 = id } { print }'
                exit 0
            fi
            echo "fleetward-signals 1"
            echo "boot_id $(cat "$STATE/boot_id")"
            metrics 300 | sed 's/^/s /'
            on_target=""
            [ -e "$STATE/told" ] && cmp -s "$STATE/told" "$STATE/kernel" && on_target=1
            # `fault-late-klog-panic`: the new kernel (not the one the host first ran) panics
            # after the first look at its log (the post-check's), so only later ones (the
            # bake's) see it.
            late=""
            if [ -n "$on_target" ] && [ -e "$STATE/fault-late-klog-panic" ] &&
                [ "$(cat "$STATE/kernel")" != "$(head -n 1 "$STATE/installed")" ]; then
                echo x >> "$STATE/klog-looks"
                [ "$(wc -l < "$STATE/klog-looks")" -ge 2 ] && late=1
            fi
            for c in panic oops bug soft_lockup hung_task mce io_error; do
                if [ -n "$on_target" ] && { [ -e "$STATE/fault-klog-$c" ] || { [ -n "$late" ] && [ "$c" = panic ]; }; }; then
                    echo "klog standin $c 1"
                else
                    echo "klog standin $c 0"
                fi
            done
            n=0; for f in "$STATE"/fault-unit-failed-*; do [ -e "$f" ] && n=$((n + 1)); done
            echo "units_failed $n"
            exit 0
        fi
        # The checks script: `units` from `fault-unit-failed-UNIT` / `fault-unit-inactive-UNIT`
        # files; `http` through the real script (a real fetch from this machine).
        if [ "${4:-}" = fleetward-check ]; then
            if [ "${5:-}" = units ]; then
                echo "fleetward-check 1"
                for f in "$STATE"/fault-unit-failed-*; do [ -e "$f" ] && echo "failed ${f##*/fault-unit-failed-}"; done
                shift 5
                for u; do
                    if [ -e "$STATE/fault-unit-inactive-$u" ]; then echo "unit $u inactive"; else echo "unit $u active"; fi
                done
                exit 0
            fi
            script=$3; shift 3
            if [ "${2:-}" = benchmark ]; then
                # The real benchmark on this machine; on the kernel it was told to boot, `bench_*`
                # lines of the `regress` file scale what it measured.
                scale=""
                if [ -e "$STATE/regress" ] && [ -e "$STATE/told" ] && cmp -s "$STATE/told" "$STATE/kernel"; then
                    scale=$(cat "$STATE/regress")
                fi
                # `fault-without-TOOL` files: the host lacks those tools (a PATH of links to
                # everything else on this machine's PATH, made once).
                without=""
                for w in "$STATE"/fault-without-*; do [ -e "$w" ] && without="$without ${w##*/fault-without-}"; done
                if [ -n "$without" ]; then
                    shim="$STATE/path-without"
                    if ! [ -d "$shim" ]; then
                        rm -rf "$shim.tmp"; mkdir -p "$shim.tmp"
                        for d in $(printf '%s' "$PATH" | tr ':' ' '); do
                            [ -d "$d" ] && cp -rsn "$d"/. "$shim.tmp"/ 2> /dev/null
                        done
                        for t in $without; do rm -f "$shim.tmp/$t"; done
                        mv "$shim.tmp" "$shim"
                    fi
                    PATH=$shim
                fi
                sh -c "$script" "$@" | awk -v scale="$scale" '
                    BEGIN { n = split(scale, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], kv, " "); f[kv[1]] = kv[2] } }
                    $1 == "bench" && ($2 in f) { $3 = sprintf("%.6g", $3 * f[$2]) } { print }'
                exit 0
            fi
            exec sh -c "$script" "$@"
        fi
        # The one-shot reboot wrapper: a marker of this boot means the reboot was issued.
        if [ "${4:-}" = fleetward-reboot-once ]; then
            marker="$STATE/run/reboot-${5:-}"
            if [ -e "$marker" ]; then echo "this reboot was already issued in this boot"; exit 0; fi
            mkdir -p "$STATE/run" && : > "$marker"
            shift 5
            case "$*" in
                "systemctl reboot"|reboot) reboot_now ;;
                *) echo "unknown reboot command: $*" >&2; exit 1 ;;
            esac
            exit 0
        fi
        sync_root
        FLEETWARD_ROOT="$R" PATH="$STATE/shims:$PATH" "$@" ;;
    sysctl)
        [ "${2:-}" = -w ] && [ $# -eq 3 ] || { echo "usage: sysctl -w KEY=VALUE" >&2; exit 2; }
        k=${3%%=*}; p="$R/proc/sys/$(printf '%s' "$k" | tr . /)"
        [ -e "$p" ] || { echo "sysctl: cannot stat /proc/sys/$(printf '%s' "$k" | tr . /): No such file or directory" >&2; exit 1; }
        printf '%s\n' "${3#*=}" > "$p"
        echo "$k = ${3#*=}" ;;
    modprobe)
        [ "${2:-}" = -- ] && [ $# -eq 3 ] || { echo "usage: modprobe -- NAME" >&2; exit 2; }
        printf '%s 16384 0 - Live 0x0000000000000000\n' "$3" >> "$R/proc/modules" ;;
    chmod)
        [ "${3:-}" = -- ] && [ $# -eq 4 ] || { echo "usage: chmod MODE -- PATH" >&2; exit 2; }
        chmod "$2" "$R$4" ;;
    echo)
        shift
        printf '%s\n' "$@" ;;
    *)
        echo "unknown command: $name" >&2
        exit 127 ;;
esac
