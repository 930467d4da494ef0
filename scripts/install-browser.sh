#!/usr/bin/env bash
# The headless browser the HTML report's test loads the page in: Debian's chromium and
# chromium-driver (idempotent; needs root and apt, as on a fresh machine of this kind).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-browser: chromium and chromium-driver are missing and this is not root with apt-get;" \
       "install them (Debian: apt-get install chromium chromium-driver) to run the report's browser test" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do  # a mirror's transient failure is retried, a lasting one is reported
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
    exit 0
  fi
  sleep $((attempt * 5))
done
echo "install-browser: apt-get could not install chromium and chromium-driver" >&2
exit 1
