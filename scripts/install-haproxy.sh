#!/usr/bin/env bash
# Installs Debian's haproxy for the replica test (cmd/voicegw/replicas_test.go),
# which puts three `voicegw serve` processes behind /usr/sbin/haproxy. The
# package's service is not wanted (the test runs its own haproxy on
# loopback ports), so no recommends.
set -euo pipefail
exec "$(dirname "$0")/install-debian.sh" install-haproxy /usr/sbin/haproxy --no-install-recommends haproxy
