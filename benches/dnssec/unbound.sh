# benches/dnssec/unbound.sh -- sourced by run.sh, cost.sh and cold.sh: the one Unbound
# configuration the DNSSEC benches share (validator on, the lab's trust anchor and root hints,
# loopback authorities allowed, no remote control), so the agreement run and the cost runs
# measure the same Unbound.
#
#   unbound_conf DIR ADDR HINTS ANCHOR [SETTING...]
#
# writes DIR/unbound.conf for Unbound listening on ADDR:53 with its files in DIR; each extra
# SETTING ("num-threads: 1") is added to the server clause.
unbound_conf() {
  local dir=$1 addr=$2 hints=$3 anchor=$4 setting
  shift 4
  mkdir -p "$dir"
  {
    cat <<CONF
server:
  interface: $addr
  port: 53
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  use-syslog: no
  logfile: "$dir/unbound.log"
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  root-hints: "$hints"
  trust-anchor-file: "$anchor"
  module-config: "validator iterator"
  trust-anchor-signaling: no
  root-key-sentinel: no
CONF
    for setting in "$@"; do echo "  $setting"; done
    printf 'remote-control:\n  control-enable: no\n'
  } >"$dir/unbound.conf"
}
