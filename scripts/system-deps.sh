#!/usr/bin/env bash
# Installs the Debian packages the test-suite can use (sshd for a second real SFTP server, Chromium for the
# UI screenshots, PostgreSQL's server binaries for the production-instance test, which runs its own
# throwaway cluster). Never fails the build: tests that need a missing package say so and use the fallback.
set -u
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: cannot install ${need[*]} (needs root and apt); related tests will use fallbacks" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1 \
  || echo "system-deps: apt-get install ${need[*]} failed; related tests will use fallbacks" >&2
mkdir -p /run/sshd 2>/dev/null && chmod 755 /run/sshd 2>/dev/null
exit 0
