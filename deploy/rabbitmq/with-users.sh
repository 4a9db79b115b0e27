#!/bin/sh
# Starts the node, then gives each pipeline process kind its least-privilege user (users.sh) once the node
# answers, and marks that done for the health check: the pipeline's processes start only after both.
#   sh with-users.sh                          the node as the image starts it
#   sh with-users.sh sh /etc/rabbitmq/start.sh   the node through another start script (the cluster's cookie)
# Runs in the upstream rabbitmq image (as root) and in CI's stand-in built from Debian's packages (as rabbitmq).
set -eu
done_marker=/tmp/broker-users-applied
rm -f "$done_marker"
if [ "$#" -eq 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    set -- docker-entrypoint.sh rabbitmq-server
  elif [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    set -- /usr/lib/rabbitmq/bin/rabbitmq-server  # Debian's /usr/sbin wrapper changes user and directory
  else
    set -- rabbitmq-server
  fi
fi
"$@" &
node=$!
# SIGTERM from `docker stop` reaches this shell (PID 1): pass it on, so the node stops cleanly.
trap 'kill -TERM "$node" 2>/dev/null || true' TERM INT

# The CLI would create a cookie of its own (owned by whoever runs it) if the node had not written one yet.
cookie=${HOME:-/var/lib/rabbitmq}/.erlang.cookie
tries=0
until [ -s "$cookie" ] && rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ] || ! kill -0 "$node" 2>/dev/null; then
    echo "broker users: the node did not start; no users created" >&2
    break
  fi
  sleep 2
done
if [ -e "$cookie" ] && rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
  if sh /etc/rabbitmq/users.sh; then
    touch "$done_marker"
  else
    echo "broker users: users.sh failed; the health check stays failing" >&2
  fi
fi
status=0
while kill -0 "$node" 2>/dev/null; do
  wait "$node" || status=$?
done
exit "$status"
