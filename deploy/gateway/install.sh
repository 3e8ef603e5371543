#!/bin/sh
# Install FOA, the Flex-Offer Agent, from this bundle, without any network access.
#
#   sudo ./install.sh              install (or upgrade), enable and start foa.service
#   sudo ./install.sh --no-start   install and enable, start at next boot
#   ./install.sh --root DIR        install into DIR (an image tree, or a test); no systemctl
#
# What goes where:
#   /opt/foa/venv                  the agent and its dependencies, from ./wheels only
#   /etc/foa/                      foa.toml and credentials (root-owned, 0700/0600)
#   /etc/systemd/system/foa.service
#
# Needs python3 (3.11 or newer) and nothing else: pip comes from the bundle too.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=""
START=1
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "foa install: $*"; }
die() { echo "foa install: error: $*" >&2; exit 1; }

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || die "python3 is missing (Raspberry Pi OS and Debian 12 have it)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is needed, found $("$PYTHON" -V 2>&1)"
for f in foa.toml password ca.crt; do
    [ -f "$HERE/etc/$f" ] || die "$HERE/etc/$f is missing: this is not a complete bundle"
done
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then die "run as root (sudo $0), or with --root DIR"; fi

OPT="$ROOT/opt/foa"
ETC="$ROOT/etc/foa"
UNITS="$ROOT/etc/systemd/system"
umask 022

# -- 1. the agent, in a fresh virtual environment, swapped in whole -----------------------
# A venv cannot move (its scripts name its path), so each install gets its own directory
# and /opt/foa/venv is a symlink switched atomically; the previous one stays for a rollback.
RELEASE="venv-$(date -u +%Y%m%d%H%M%S)"
say "installing the agent into $OPT/$RELEASE (offline, from the bundle's wheels)"
mkdir -p "$OPT"
rm -rf "${OPT:?}/$RELEASE"
# --without-pip: Debian splits ensurepip into python3-venv; the bundle brings its own pip.
"$PYTHON" -m venv --without-pip "$OPT/$RELEASE"
PIP_WHEEL=""
for w in "$HERE"/wheels/pip-*.whl; do [ -f "$w" ] && PIP_WHEEL=$w; done
[ -n "$PIP_WHEEL" ] || die "the bundle has no pip wheel"
# PIP_CONFIG_FILE=/dev/null: only the bundle counts, whatever pip.conf the machine has.
PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$OPT/$RELEASE/bin/python" "$PIP_WHEEL/pip" install --quiet --no-index \
    --find-links "$HERE/wheels" pip atp-flex \
    || die "pip could not install the bundle's wheels (built for another platform or Python?)"
[ -L "$OPT/venv" ] || rm -rf "${OPT:?}/venv"
ln -sfn "$RELEASE" "$OPT/venv.link"
mv -T "$OPT/venv.link" "$OPT/venv"
# Keep the two newest releases (globs sort, and the names sort by time).
n=0; for d in "$OPT"/venv-*; do n=$((n + 1)); done
i=0; for d in "$OPT"/venv-*; do i=$((i + 1)); if [ "$i" -le $((n - 2)) ]; then rm -rf "$d"; fi; done

# -- 2. configuration and credentials -----------------------------------------------------
say "installing the configuration and credentials into $ETC"
install -d -m 0700 "$ETC"
install -m 0600 "$HERE/etc/foa.toml" "$ETC/foa.toml"
install -m 0600 "$HERE/etc/password" "$ETC/password"
install -m 0644 "$HERE/etc/ca.crt" "$ETC/ca.crt"
if [ -f "$HERE/etc/client.key" ]; then
    install -m 0644 "$HERE/etc/client.crt" "$ETC/client.crt"
    install -m 0600 "$HERE/etc/client.key" "$ETC/client.key"
fi
"$OPT/venv/bin/foa" config check "$ETC/foa.toml" >/dev/null \
    || die "foa config check refused $ETC/foa.toml (see above)"

# -- 3. the service -----------------------------------------------------------------------
say "installing foa.service"
install -d -m 0755 "$UNITS"
install -m 0644 "$HERE/systemd/foa.service" "$UNITS/foa.service"
if [ -f "$HERE/etc/client.key" ]; then
    install -d -m 0755 "$UNITS/foa.service.d"
    cat > "$UNITS/foa.service.d/client-cert.conf" <<'UNIT'
# Written by the gateway bundle's install.sh: this agent has a TLS client certificate.
[Service]
LoadCredential=client.crt:/etc/foa/client.crt
LoadCredential=client.key:/etc/foa/client.key
UNIT
fi

if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable foa.service
    if [ "$START" = 1 ]; then
        systemctl restart foa.service
        say "foa.service enabled and started; follow it with: journalctl -u foa -f"
    else
        say "foa.service enabled; it starts at the next boot"
    fi
else
    # An image tree (--root), or no running systemd: enabling is the symlink that
    # `systemctl enable` would make; the service starts at the next boot.
    install -d "$UNITS/multi-user.target.wants"
    ln -sf /etc/systemd/system/foa.service "$UNITS/multi-user.target.wants/foa.service"
    say "foa.service enabled; it starts at the next boot"
fi
