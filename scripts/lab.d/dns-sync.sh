#!/usr/bin/env bash
# Cluster DNS stand-in for the wkjoin lab: keeps a dnsmasq hosts file in sync with the API's Services.
# On every Service change (a watch, as CoreDNS follows the API): kubectl get svc -A -> "<clusterIP>
# <svc>.<ns>.svc.<domain>" lines -> hosts file; when the content changed, SIGHUP dnsmasq (which re-reads
# --addn-hosts files on SIGHUP). When the watch ends (API server timeout or restart), it resyncs after RETRY s.
# Usage: dns-sync.sh <kubectl> <kubeconfig> <hosts-file> <dnsmasq-pid-file> <domain> [retry]
set -euo pipefail

KUBECTL=$1 KUBECONFIG_FILE=$2 HOSTS=$3 DNSMASQ_PID=$4 DOMAIN=$5 RETRY=${6:-3}
# (its own process group, from the lab's setsid: take the watch and its reader down too)
trap 'trap - TERM INT; kill 0 2>/dev/null; exit 0' TERM INT

log() { printf '%s dns-sync: %s\n' "$(date -u +%FT%TZ)" "$*"; }

sync_once() {
  local out new old
  if out=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=5s get svc -A -o \
      jsonpath='{range .items[*]}{.spec.clusterIP}{" "}{.metadata.name}{" "}{.metadata.namespace}{"\n"}{end}' 2>&1); then
    new=$(awk -v d="$DOMAIN" 'NF == 3 && $1 != "None" && $1 != "" { print $1 " " $2 "." $3 ".svc." d }' <<<"$out" | sort)
    old=$(cat "$HOSTS" 2>/dev/null || true)
    if [[ $new != "$old" ]]; then
      printf '%s\n' "$new" >"$HOSTS.tmp"
      mv "$HOSTS.tmp" "$HOSTS"
      if [[ -s $DNSMASQ_PID ]] && kill -HUP "$(cat "$DNSMASQ_PID")" 2>/dev/null; then
        log "updated: $(wc -l <"$HOSTS") service records, dnsmasq reloaded"
      else
        log "updated: $(wc -l <"$HOSTS") service records (dnsmasq not running yet)"
      fi
    fi
  else
    log "kubectl failed: ${out//$'\n'/ }"
  fi
}

log "following Services -> $HOSTS (domain $DOMAIN)"
while :; do
  sync_once
  # each event resyncs at once; a burst (a validate run's Services) is one resync after 0.1 s of quiet
  "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get svc -A --watch-only -o name 2>&1 |
    while read -r _; do
      while read -r -t 0.1 _; do :; done
      sync_once
    done &
  wait $! || true
  log "the Service watch ended; resyncing in ${RETRY}s"
  sleep "$RETRY" &
  wait $! || true
done
