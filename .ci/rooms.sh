#!/usr/bin/env bash
# Which room of src/ may import which (docs/architecture.md, "Rooms and arrows"). Fails, naming
# the file and line, when a room imports one its row does not list. Arrows point down only:
# a room never imports a room that imports it.
set -euo pipefail
cd "$(dirname "$0")/../src"

declare -A may=(
  [dns]=""
  [dnssec]=""
  [cache]="dns dnssec"
  [trace]="dns"
  [local]="dns"
  [metrics]="dns cache"
  [transport]="dns cache"
  [server]="dns cache metrics"
  [resolver]="dns dnssec cache metrics trace transport local"
  [control]="dns metrics"
  [redirect]="dns cache metrics trace control resolver"
  [lab]="dns"
  [config]="dns dnssec cache transport server resolver local"
  [fuzz]="dns cache transport server resolver"
  [web]="dns cache metrics trace transport control redirect resolver server"
  [cli]="dns dnssec cache metrics trace transport server resolver control redirect config lab local web"
)

bad=0
for room in "${!may[@]}"; do
  [ -d "$room" ] || { echo "rooms.sh: no src/$room: update the table" >&2; bad=1; continue; }
  while IFS=: read -r file line used; do
    [ "$used" = "$room" ] && continue
    case " ${may[$room]} " in
      *" $used "*) ;;
      *) echo "src/$file:$line: room '$room' imports '$used', which its row does not allow" >&2; bad=1 ;;
    esac
  done < <(grep -rnoE 'crate::[a-z_]+' "$room" | sed -E 's/crate:://' )
done
for dir in */; do
  room=${dir%/}
  [ -n "${may[$room]+x}" ] || { echo "rooms.sh: src/$room has no row in the table" >&2; bad=1; }
done
if [ "$bad" = 0 ]; then echo "rooms: every import follows the table"; fi
exit "$bad"
