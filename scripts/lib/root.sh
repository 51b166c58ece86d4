# Sourced by scripts/ensure-*: run a command as root, and install Debian packages with apt.
# The sourcing script defines log(). apt, starting services and reading the broker's Erlang
# cookie need root: directly, through password-less sudo for a normal user (a Vagrant box, a dev
# laptop), or a message saying what to run.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else log "need root for: $* (run as root or with password-less sudo)"; return 1
  fi
}

apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
