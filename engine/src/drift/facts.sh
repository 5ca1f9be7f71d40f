# fleetward facts: everything `fleetward drift` compares, read in one round trip.
# Prints one line per fact, fields separated by tabs:
#   F  kind  key  field  value     a fact
#   U  kind  key  field  reason    a fact that could not be read (reported as `unknown`)
# Arguments: names after --sysctl, --module, --package, --service and --file.
# Paths are read under ${FLEETWARD_ROOT:-} (empty on a live host), so a mounted image or a
# test root can be audited with the same script.
R=${FLEETWARD_ROOT:-}
f() { printf 'F\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; }
u() { printf 'U\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; }
# A file's content on one line, whitespace squeezed.
one() {
    if v=$(tr -s ' \t\n' '   ' 2>/dev/null < "$4"); then f "$1" "$2" "$3" "${v% }"
    else u "$1" "$2" "$3" "cannot read ${4#"$R"}"; fi
}
one kernel - - "$R/proc/sys/kernel/osrelease"
one cmdline - - "$R/proc/cmdline"
if [ -r "$R/boot/grub/grubenv" ]; then
    f boot_entry - - "$(sed -n 's/^saved_entry=//p' "$R/boot/grub/grubenv" | head -n 1)"
else
    u boot_entry - - "cannot read /boot/grub/grubenv"
fi
m=$(awk -F': *' '/^microcode/ { print $2; exit }' "$R/proc/cpuinfo" 2>/dev/null)
if [ -n "$m" ]; then f microcode - - "$m"; else u microcode - - "no microcode line in /proc/cpuinfo"; fi

# Persisted sysctls, `key<TAB>value`: drop-ins in name order (/etc over /run over /usr/lib for
# the same name), then /etc/sysctl.conf; the last assignment wins.
persisted() {
    list=$(for d in /usr/lib/sysctl.d /run/sysctl.d /etc/sysctl.d; do
        for x in "$R$d"/*.conf; do [ -r "$x" ] && printf '%s %s\n' "${x##*/}" "$x"; done
    done | sort -s -k1,1 | awk '{ p[$1] = $2; if (!($1 in s)) { s[$1] = 1; o[++n] = $1 } }
        END { for (i = 1; i <= n; i++) print p[o[i]] }')
    [ -r "$R/etc/sysctl.conf" ] && list="$list
$R/etc/sysctl.conf"
    [ -n "$list" ] || return 0
    # shellcheck disable=SC2086
    printf '%s\n' "$list" | while IFS= read -r x; do [ -n "$x" ] && cat "$x"; echo; done | awk '
        /^[ \t]*[#;]/ { next }
        { i = index($0, "="); if (!i) next
          k = substr($0, 1, i - 1); v = substr($0, i + 1)
          gsub(/^[ \t-]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
          gsub(/\//, ".", k); gsub(/[ \t]+/, " ", v); val[k] = v }
        END { for (k in val) printf "%s\t%s\n", k, val[k] }'
}
blacklists() {
    cat "$R"/usr/lib/modprobe.d/*.conf "$R"/run/modprobe.d/*.conf "$R"/etc/modprobe.d/*.conf 2>/dev/null |
        awk '$1 == "blacklist" { m = $2; gsub(/-/, "_", m); print m }'
}

mode= P= B= ps=0 bs=0
for a in "$@"; do
    case "$a" in
        --sysctl|--module|--package|--service|--file) mode=${a#--}; continue ;;
    esac
    case "$mode" in
    sysctl)
        one sysctl "$a" runtime "$R/proc/sys/$(printf '%s' "$a" | tr . /)"
        [ $ps = 1 ] || { P=$(persisted); ps=1; }
        v=$(printf '%s\n' "$P" | awk -F'\t' -v k="$a" '$1 == k { v = $2; found = 1 } END { if (found) print v; else print "\001" }')
        [ "$v" = "$(printf '\001')" ] && v="(not persisted)"
        f sysctl "$a" persisted "$v" ;;
    module)
        n=$(printf '%s' "$a" | tr - _)
        if [ -r "$R/proc/modules" ]; then
            if awk -v m="$n" '$1 == m { found = 1 } END { exit !found }' "$R/proc/modules"; then
                f module "$a" loaded yes
            else
                f module "$a" loaded no
            fi
        else
            u module "$a" loaded "cannot read /proc/modules"
        fi
        [ $bs = 1 ] || { B=$(blacklists); bs=1; }
        if printf '%s\n' "$B" | grep -qx -- "$n"; then f module "$a" blacklisted yes
        else f module "$a" blacklisted no; fi ;;
    package)
        if command -v dpkg-query >/dev/null 2>&1; then
            s=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' -- "$a" 2>/dev/null)
            case "$s" in
                "ii "*) f package "$a" version "${s#ii }" ;;
                *) f package "$a" version absent ;;
            esac
        elif command -v rpm >/dev/null 2>&1; then
            if s=$(rpm -q --qf '%{EPOCHNUM}:%{VERSION}-%{RELEASE}' -- "$a" 2>/dev/null); then
                f package "$a" version "${s#0:}"
            else
                f package "$a" version absent
            fi
        else
            u package "$a" version "neither dpkg-query nor rpm is installed"
        fi ;;
    service)
        if command -v systemctl >/dev/null 2>&1; then
            e=$(systemctl is-enabled -- "$a" 2>/dev/null); [ -n "$e" ] || e=not-found
            s=$(systemctl is-active -- "$a" 2>/dev/null)
            f service "$a" enabled "$e"
            if [ -n "$s" ]; then f service "$a" active "$s"
            else u service "$a" active "systemctl is-active gave no state"; fi
        else
            u service "$a" enabled "systemctl is not installed"
            u service "$a" active "systemctl is not installed"
        fi ;;
    file)
        p="$R$a"
        if [ ! -e "$p" ] && [ ! -L "$p" ]; then
            f file "$a" sha256 absent; f file "$a" mode absent; f file "$a" owner absent
        else
            if h=$(sha256sum < "$p" 2>/dev/null); then f file "$a" sha256 "${h%% *}"
            else u file "$a" sha256 "cannot read $a"; fi
            if s=$(stat -c '%a %U:%G' -- "$p" 2>/dev/null); then
                f file "$a" mode "${s%% *}"; f file "$a" owner "${s#* }"
            else
                u file "$a" mode "cannot stat $a"; u file "$a" owner "cannot stat $a"
            fi
        fi ;;
    esac
done
exit 0
