#!/bin/bash
# The audit of issue 20: every field a program can read about itself in /proc/PID/status,
# stat, sched, fdinfo (of a regular file; of an eventfd, signalfd, timerfd), the VmFlags of smaps and the entries of /proc/PID/
# must be in Documentation/whole-process.md's tables ("Every field a program can see in
# /proc"): saved, refused, not process state, or a known gap. The fields are read from live
# processes of this kernel (a sleep; zdtm's madvise test, which holds every madvise state the
# image saves; zdtm's eventfd, signalfd, timerfd; this shell with a regular file open), so a field a new kernel adds fails here
# until it is classified. Prints TAP with a kselftest "# Totals:" line, and the gaps it saw.
# shellcheck source=tests/e2e/tap-lib.sh
. "$(dirname "$0")/tap-lib.sh" proc-audit
doc=$top/Documentation/whole-process.md

# table KIND: "FIELD<TAB>VERDICT" for each field of the doc's <!-- audit KIND --> table.
# A row's first cell lists fields in backquotes; for stat, "`N` name" gives N.
table() {
  awk -v kind="$1" '
    $0 == "<!-- audit " kind " -->" { on = 1; next }
    /^<!-- end audit -->/ { on = 0 }
    on && /^\| `/ {
      split($0, c, "|"); cell = c[2]; verdict = c[3]
      gsub(/^ +| +$/, "", verdict)
      while (match(cell, /`[^`]+`/)) {
        print substr(cell, RSTART + 1, RLENGTH - 2) "\t" verdict
        cell = substr(cell, RSTART + RLENGTH)
      }
    }' "$doc"
}

# check KIND WHAT FIELD...: each FIELD must be in KIND's table with a known verdict (one awk:
# a fork per field costs seconds in a TCG guest).
check() {
  local kind=$1 what=$2 out missing gaps
  shift 2
  out=$(printf '%s\n' "$@" | awk -F'\t' '
    NR == FNR { v[$1] = $2; next }
    $0 == "" { next }
    !($0 in v) { m = m " " $0; next }
    v[$0] == "gap" { g = g " " $0; next }
    v[$0] != "saved" && v[$0] != "refused" && v[$0] != "not process state" { m = m " " $0 "(" v[$0] ")" }
    END { print "M" m; print "G" g }' <(table "$kind") -)
  missing=$(sed -n 's/^M//p' <<<"$out")
  gaps=$(sed -n 's/^G//p' <<<"$out")
  [ -z "$gaps" ] || echo "# $what: known gaps (neither saved nor refused):$gaps"
  if [ -z "$missing" ]; then tap 0 "$what: all $# fields classified"
  else tap 1 "$what: fields in no table of whole-process.md" "$missing"; fi
}

echo "TAP version 13"
echo "1..7"
rm -f "$d/ready"
(cd "$d" && exec "$build/zdtm/madvise" "$d/ready" "$d/go" >/dev/null 2>&1) &
mpid=$!
sleep 600 &
spid=$!
for ((i = 0; i < 600; i++)); do [ -e "$d/ready" ] && break; sleep 0.1; done
[ -e "$d/ready" ] || echo "# zdtm madvise did not start: its VmFlags are not read"

mapfile -t f < <(cut -d: -f1 "/proc/$spid/status")
check status "/proc/PID/status" "${f[@]}"

nstat=$(sed 's/.*) //' "/proc/$spid/stat" | wc -w)
mapfile -t f < <(seq 1 $((nstat + 2)))
check stat "/proc/PID/stat ($((nstat + 2)) fields)" "${f[@]}"

if [ -r "/proc/$spid/sched" ]; then
  mapfile -t f < <(sed -n '3,$p' "/proc/$spid/sched" | sed -E 's/ *:.*//; s/^ +//; s/ +$//' | grep -v '^$')
  check sched "/proc/PID/sched" "${f[@]}"
else
  tap 0 "/proc/PID/sched: not in this kernel (CONFIG_SCHED_DEBUG off), nothing to classify"
fi

exec 9<"$doc"
flock -s 9
mapfile -t f < <(cut -d: -f1 "/proc/$$/fdinfo/9" | sort -u)
check fdinfo "/proc/PID/fdinfo/N of a locked regular file" "${f[@]}"
exec 9<&-

# The event descriptors of zdtm's eventfd, signalfd and timerfd, as this kernel shows them.
epids=()
for t in eventfd signalfd timerfd; do
  rm -f "$d/ready.$t"
  (cd "$d" && exec "$build/zdtm/$t" "$d/ready.$t" "$d/go.$t" >/dev/null 2>&1) &
  epids+=($!)
done
f=()
for ((i = 0; i < 600; i++)); do
  [ -e "$d/ready.eventfd" ] && [ -e "$d/ready.signalfd" ] && [ -e "$d/ready.timerfd" ] && break
  sleep 0.1
done
for p in "${epids[@]}"; do
  for l in /proc/"$p"/fd/*; do
    case $(readlink "$l") in
      'anon_inode:['[est]*'fd]') mapfile -t -O "${#f[@]}" f < <(cut -d: -f1 "/proc/$p/fdinfo/${l##*/}") ;;
    esac
  done
done
mapfile -t f < <(printf '%s\n' "${f[@]}" | sort -u)
if [ "${#f[@]}" -lt 8 ]; then tap 1 "fdinfo of event descriptors" "only '${f[*]}' read: zdtm eventfd, signalfd, timerfd did not start?"
else check fdinfo-event "/proc/PID/fdinfo/N of an eventfd, signalfd, timerfd" "${f[@]}"; fi
kill -9 "${epids[@]}" 2>/dev/null

mapfile -t f < <(cat "/proc/$spid/smaps" "/proc/$mpid/smaps" "/proc/$$/smaps" 2>/dev/null |
                 sed -n 's/^VmFlags: *//p' | tr ' ' '\n' | grep -v '^$' | sort -u)
check vmflags "VmFlags of smaps" "${f[@]}"

mapfile -t f < <(ls "/proc/$spid")
check files "entries of /proc/PID" "${f[@]}"

totals
