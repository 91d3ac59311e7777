#!/usr/bin/env bash
# Mail delivery throughput: 10,000 queued mails to the SendGrid stand-in and to aiosmtpd
# on loopback, with one and two delivery loops. Needs PostgreSQL on 127.0.0.1:5432
# (scripts/test starts it) and aiosmtpd (scripts/test installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PLINTH_TEST_SMTP_PYTHON:-/var/tmp/plinth-tools/smtp-venv/bin/python}"
cargo build --release --example mail
BIN="${CARGO_TARGET_DIR:-target}/release/examples/mail"
MAILDIR="$(mktemp -d)"
"$PY" -m aiosmtpd -n -l 127.0.0.1:2525 -c aiosmtpd.handlers.Sink >/dev/null 2>&1 &
SMTP=$!
trap 'kill $SMTP; rm -rf "$MAILDIR"' EXIT
sleep 1
for workers in 1 2; do
  "$BIN" --provider sendgrid --workers "$workers" --messages 10000
  "$BIN" --provider smtp --smtp-url smtp://127.0.0.1:2525 --workers "$workers" --messages 10000
done
