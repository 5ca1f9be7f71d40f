# fleetward checks: the host side of the built-in validation checks, arguments as data.
# Run as `sh -c SCRIPT fleetward-check KIND ARGS…`:
#   units [UNIT]...        failed units, and the state of each named unit
#   http URL SECONDS       fetch URL from this host with curl (or wget)
# Prints `fleetward-check 1`, then one record a line:
#   failed UNIT | unit NAME STATE | status CODE | tool NAME | body (the rest is the body)
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
    *)
        echo "missing check unknown check \`$kind\`"; exit 2 ;;
esac
