#!/bin/sh
# Installs the Erlang cookie from the secret file as $HOME/.erlang.cookie (mode 0400), then starts the node.
# Nodes and their CLI authenticate each other with it, and it grants a shell on the broker: on the command line
# (-setcookie) anyone on the host could read it in `ps`; in an environment variable, in `docker inspect`.
# Runs in the upstream rabbitmq image (as root: its entrypoint then drops to the rabbitmq user) and in CI's
# stand-in built from Debian's packages (already the rabbitmq user).
set -eu
secret=/run/secrets/erlang_cookie
cookie=${HOME:-/var/lib/rabbitmq}/.erlang.cookie
if [ ! -s "$secret" ]; then
  echo "rabbitmq: no Erlang cookie in $secret: mount one (RABBITMQ_ERLANG_COOKIE_FILE)" >&2
  exit 1
fi
rm -f "$cookie"  # a 0400 file from the last start cannot be written over, only replaced
(umask 0377 && tr -d '\r\n' <"$secret" >"$cookie")
if [ "$(id -u)" = 0 ]; then
  chown rabbitmq:rabbitmq "$cookie"
  exec docker-entrypoint.sh rabbitmq-server
fi
# Debian's /usr/sbin wrapper changes user and directory; the real script is this one.
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  exec /usr/lib/rabbitmq/bin/rabbitmq-server
fi
exec rabbitmq-server
