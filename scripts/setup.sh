#!/usr/bin/env bash
# Set up everything `make test` and `make demo` need on a Debian/Ubuntu machine:
# a virtual environment with the project and its extras, Mosquitto and PostgreSQL.
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-cloud,dev}"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi
}
apt_install() {
    command -v apt-get >/dev/null || return 1
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { as_root apt-get update -q >/dev/null 2>&1 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python 3.11 or newer is needed as '$PYTHON' (set PYTHON=/path/to/python3.11)." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        echo "setup: installing python3-venv" >&2
        apt_install python3-venv || { echo "setup: '$PYTHON -m venv' failed; install the venv module (sudo apt-get install python3-venv)." >&2; exit 1; }
        "$PYTHON" -m venv "$VENV"
    fi
fi

stamp="$VENV/.installed-$EXTRAS"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing the project and its extras ($EXTRAS) into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]"
    touch "$stamp"
fi

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "setup: installing Mosquitto" >&2
    if ! apt_install mosquitto mosquitto-clients; then
        echo "setup: Mosquitto is missing; install it with: sudo apt-get install mosquitto mosquitto-clients" >&2
        exit 1
    fi
fi

# The store's tests run against a throwaway PostgreSQL cluster (cloud/pgcluster.py starts
# Debian's initdb and pg_ctl from /usr/lib/postgresql/*/bin; the system's own cluster, if the
# package starts one, is not used).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    echo "setup: installing PostgreSQL" >&2
    if ! apt_install postgresql; then
        echo "setup: PostgreSQL is missing; install it with: sudo apt-get install postgresql" >&2
        exit 1
    fi
fi

# The page tests drive a headless Chromium with playwright (in the dev extra): Debian's
# chromium, installed without recommends (they pull avahi-daemon, whose set-up fails in
# containers and makes apt exit 100). Where there is no such package (Ubuntu has Chromium
# only as a snap, which does not run in containers), playwright's own build, downloaded once
# into its cache with the libraries it needs. `python -m tests.web.browser` says which is used.
if [[ ",$EXTRAS," == *,dev,* ]] && ! "$VENV/bin/python" -m tests.web.browser >/dev/null 2>&1; then
    echo "setup: installing Chromium for the page tests" >&2
    if ! apt_install --no-install-recommends chromium; then
        echo "setup: no chromium package here; installing playwright's Chromium" >&2
        if as_root true; then with_deps="--with-deps"; else with_deps=""; fi
        # shellcheck disable=SC2086  # empty or one option
        "$VENV/bin/python" -m playwright install $with_deps chromium >/dev/null \
            || echo "setup: could not install Chromium; run: sudo apt-get install --no-install-recommends chromium (Debian) or $VENV/bin/python -m playwright install --with-deps chromium" >&2
    fi
fi

# The deployment tests check the systemd units with `systemd-analyze verify`, the cloud
# compose file with `docker-compose config` and the load balancer with `haproxy -c`; none of
# them needs a running service, only the tools.
deploy_tools=""
command -v systemd-analyze >/dev/null || deploy_tools="$deploy_tools systemd"
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || deploy_tools="$deploy_tools haproxy"
command -v docker-compose >/dev/null || deploy_tools="$deploy_tools docker-compose"
if [ -n "$deploy_tools" ]; then
    echo "setup: installing the deployment checkers:$deploy_tools" >&2
    # shellcheck disable=SC2086  # a list of package names
    apt_install $deploy_tools || echo "setup: could not install$deploy_tools; run: sudo apt-get install$deploy_tools" >&2
fi
