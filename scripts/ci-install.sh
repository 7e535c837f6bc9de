#!/usr/bin/env bash
# Install what the end-to-end tests need beyond Python: Postfix, without configuring
# or starting the machine's own instance (the tests run a private one on loopback).
# Idempotent; run as root on Debian 12 (or with sudo available).
set -euo pipefail

if command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ]; then
    echo "ci-install: postfix is already installed: $(/usr/sbin/postconf -dh mail_version 2>/dev/null || echo '?')"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "ci-install: postfix is missing and this is not root (no sudo either)" >&2
    exit 1
fi

echo "ci-install: preseeding debconf: postfix/main_mailer_type = No configuration"
echo "postfix postfix/main_mailer_type select No configuration" \
    | "${as_root[@]}" debconf-set-selections

echo "ci-install: apt-get update"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q

echo "ci-install: apt-get install -y postfix"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends postfix

echo "ci-install: installed postfix $(/usr/sbin/postconf -dh mail_version)"
