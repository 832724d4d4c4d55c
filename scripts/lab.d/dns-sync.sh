#!/usr/bin/env bash
# Cluster DNS stand-in for the wkjoin lab: keeps a dnsmasq hosts file in sync with the API's Services.
# Every INTERVAL seconds: kubectl get svc -A -> "<clusterIP> <svc>.<ns>.svc.<domain>" lines -> hosts file;
# when the content changed, SIGHUP dnsmasq (which re-reads --addn-hosts files on SIGHUP).
# Usage: dns-sync.sh <kubectl> <kubeconfig> <hosts-file> <dnsmasq-pid-file> <domain> [interval]
set -euo pipefail

KUBECTL=$1 KUBECONFIG_FILE=$2 HOSTS=$3 DNSMASQ_PID=$4 DOMAIN=$5 INTERVAL=${6:-3}
trap 'exit 0' TERM INT

log() { printf '%s dns-sync: %s\n' "$(date -u +%FT%TZ)" "$*"; }
log "watching Services every ${INTERVAL}s -> $HOSTS (domain $DOMAIN)"
while :; do
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
  sleep "$INTERVAL" &
  wait $! || true
done
