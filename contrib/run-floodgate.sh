#!/usr/bin/env bash
# Sets everything up (see setup.sh), makes sure a Redis answers at the
# address of the shipped config (starting a local redis-server if none
# does), and runs floodgate in the foreground on conf/floodgate.yaml.
# Extra arguments go to floodgate (e.g. --socket unix:/run/floodgate.sock).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

CONFIG="${FLOODGATE_CONFIG:-$FLOODGATE_ROOT/conf/floodgate.yaml}"
"$BUILD_DIR/milter/floodgate" --config "$CONFIG" --check-config

if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  echo "run-floodgate: no Redis at 127.0.0.1:6379, starting a local redis-server"
  mkdir -p /var/lib/floodgate-redis
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --dir /var/lib/floodgate-redis \
    --pidfile /var/lib/floodgate-redis/redis.pid --logfile /var/lib/floodgate-redis/redis.log
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
fi

exec "$BUILD_DIR/milter/floodgate" --config "$CONFIG" --foreground "$@"
