# shellcheck shell=bash
# Shared by the ops scripts (sourced, not run).

# apt_install PACKAGE...: installs Debian packages when run as root: waits for another
# apt to finish, refreshes the package lists only when the install fails without it (a
# fresh machine has none), and starts no service a package ships (prometheus would start
# a server): a policy-rc.d denies it for the duration, unless the machine has its own.
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "$* missing and not root: install it (apt-get install $*)" >&2
    return 1
  fi
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -qq) policy=/usr/sbin/policy-rc.d own_policy="" rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    { "${apt[@]}" update >/dev/null && "${apt[@]}" install -y --no-install-recommends "$@" >/dev/null; } || rc=$?
  fi
  [ -z "$own_policy" ] || rm -f "$policy"
  return "$rc"
}
