"""Run a Mosquitto broker as a child process: for `atp broker up`, the demo and the tests.

The broker is started from a generated top-level file that sets what differs per run (the
loopback listener and its port, the persistence directory, the log file) and includes one of
the configurations under ``mosquitto/`` for everything else, so the tests run the very
configuration a user runs.
"""

from __future__ import annotations

import getpass
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

#: The repository's broker configurations (a source checkout or an editable install).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "mosquitto"
INSTALL_HINT = (
    "Mosquitto is not installed: run `sudo apt-get install mosquitto mosquitto-clients` "
    "(Debian/Ubuntu), then try again."
)


#: Where ``mosquitto/prod.conf`` expects the site's broker files (see ``cloud.provision``).
PROD_FILES_DIR = "/etc/mosquitto/atp"
#: Where ``prod.conf`` puts its admin socket (Debian's unit makes this directory, mode 0740).
PROD_RUN_DIR = "/run/mosquitto"
#: A Unix socket's path must fit ``sun_path`` (108 bytes, with the final NUL).
_SOCKET_PATH_MAX = 107

_LISTENER = re.compile(r"^\s*listener\s", re.MULTILINE)
_UNIX_LISTENER = re.compile(r"^\s*listener\s+0\s+(/\S+)\s*$", re.MULTILINE)
_USER = re.compile(r"^\s*user\s", re.MULTILINE)


class BrokerError(RuntimeError):
    """Mosquitto is missing, or did not start; the message says why (with its log)."""


class PortInUse(BrokerError):
    """Another program listens on the broker's port already."""


def declares_listener(config_text: str) -> bool:
    """Whether a configuration has its own network listener (``prod.conf`` does)."""
    return any(not _UNIX_LISTENER.match(m) for m in _listener_lines(config_text))


def _listener_lines(config_text: str) -> list[str]:
    return [line for line in config_text.splitlines() if _LISTENER.match(line)]


def unix_socket(config_text: str) -> Path | None:
    """The path of a configuration's Unix-socket listener (prod.conf's admin socket)."""
    m = _UNIX_LISTENER.search(config_text)
    return Path(m.group(1)) if m else None


def localize(
    config_text: str,
    *,
    host: str,
    port: int,
    files_dir: Path | None = None,
    listener_options: str = "",
    run_dir: Path | None = None,
) -> str:
    """A configuration moved onto ``host:port``, with its files under ``files_dir``.

    A configuration that declares its network listener (``prod.conf``: port 8883 on every
    address, TLS options below it) gets that one listener line rewritten to ``host port``
    and ``listener_options`` inserted right under it, so its TLS options keep applying to it
    and no plain-text listener is ever added; paths under ``/etc/mosquitto/atp`` move to
    ``files_dir`` and paths under ``/run/mosquitto`` (the admin socket) to ``run_dir``.
    Nothing else changes: a trial on one machine and the tests run the production policy
    itself."""
    lines = config_text.splitlines()
    listeners = [
        i
        for i, line in enumerate(lines)
        if _LISTENER.match(line) and not _UNIX_LISTENER.match(line)
    ]
    if len(listeners) > 1:
        raise BrokerError("a configuration run on loopback may declare one network listener only")
    if listeners:
        extra = [o for o in listener_options.splitlines() if o.strip()]
        i = listeners[0]
        lines[i : i + 1] = [f"listener {port} {host}", *extra]
    text = "\n".join(lines) + "\n"
    if files_dir is not None:
        text = text.replace(f"{PROD_FILES_DIR}/", f"{Path(files_dir).resolve()}/")
    if run_dir is not None:
        text = text.replace(f"{PROD_RUN_DIR}/", f"{Path(run_dir).resolve()}/")
    sock = unix_socket(text)
    if sock is not None and len(str(sock)) > _SOCKET_PATH_MAX:
        raise BrokerError(
            f"the admin socket's path {sock} is longer than a Unix socket allows "
            f"({_SOCKET_PATH_MAX} bytes): use a shorter data directory"
        )
    return text


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` already. Mosquitto binds with
    ``SO_REUSEADDR`` too, so a port a stopped broker left in ``TIME_WAIT`` counts as free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def mosquitto_binary() -> str:
    """Path of the ``mosquitto`` executable, or :class:`BrokerError` saying how to install it."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise BrokerError(INSTALL_HINT)


class Mosquitto:
    """A Mosquitto process on ``host:port`` that lives as long as the ``with`` block.

    ``config`` is included after the generated lines; ``listener_options`` go right under
    the listener line (TLS settings of a production-style test, say). ``workdir`` keeps the
    persistence file, so a broker restarted on the same ``workdir`` and ``port`` keeps its
    sessions and queued messages, as a real one does.

    A ``config`` with a listener of its own (``prod.conf``) is run through :func:`localize`:
    its listener moves to ``host:port``, ``files_dir`` stands in for ``/etc/mosquitto/atp``
    (a site's ``broker/`` directory) and ``workdir`` for ``/run/mosquitto`` (so the admin
    socket is :attr:`admin_socket`).

    The broker runs as ``user`` (a ``user`` line), by default as whoever launches it, unless
    the configuration names one. As root that means a broker running as root, which suits a
    test on a throw-away machine only; ``atp broker up`` run by root passes
    ``user="mosquitto"`` and hands its directories to that user."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        config: Path = CONFIG_DIR / "dev.conf",
        workdir: Path | None = None,
        listener_options: str = "",
        files_dir: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.config = Path(config)
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="atp-mosquitto-"))
        self.listener_options = listener_options
        self.files_dir = files_dir
        self.user = user
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        """Whether the listener speaks TLS (its configuration names a server certificate)."""
        text = f"{self.listener_options}\n{self.config.read_text()}"
        return re.search(r"^\s*certfile\s", text, re.MULTILINE) is not None

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def admin_socket(self) -> Path | None:
        """The admin socket of a configuration that has one (``prod.conf``), moved into the
        working directory."""
        sock = unix_socket(self.config.read_text())
        if sock is None:
            return None
        if str(sock).startswith(f"{PROD_RUN_DIR}/"):
            return self.workdir.resolve() / sock.relative_to(PROD_RUN_DIR)
        return sock

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _write_config(self) -> Path:
        conf_dir = self.workdir / "conf.d"
        shutil.rmtree(conf_dir, ignore_errors=True)  # a reused workdir: only this config
        conf_dir.mkdir(parents=True)
        text = self.config.read_text()
        own_listener = declares_listener(text)
        if own_listener or self.files_dir is not None or unix_socket(text) is not None:
            text = localize(
                text,
                host=self.host,
                port=self.port,
                files_dir=self.files_dir,
                listener_options=self.listener_options,
                run_dir=self.workdir,
            )
        (conf_dir / self.config.name).write_text(text)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        main = self.workdir / "mosquitto.conf"
        listener = "" if own_listener else f"listener {self.port} {self.host}\n"
        options = "" if own_listener else f"{self.listener_options}\n"
        # Started as root without a `user` line, Mosquitto switches to the `mosquitto` user,
        # which can write neither this directory (no log, no persistence file) nor read 0600
        # files; so the broker runs as `self.user`, by default whoever launched it, unless its
        # configuration names a user.
        own_user = _USER.search(text) or _USER.search(self.listener_options)
        user = "" if own_user else f"user {self.user or getpass.getuser()}\n"
        main.write_text(
            f"{listener}"
            f"{options}"
            f"{user}"
            f"persistence_location {data}/\n"
            f"log_dest file {self.log_path}\n"
            f"include_dir {conf_dir}\n"
        )
        return main

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self._proc is not None and self._proc.poll() is None:
            return self
        # Checked first: the readiness probe below would connect to the other program and
        # call this broker started, moments before it exits unable to bind.
        if port_in_use(self.host, self.port):
            raise PortInUse(
                f"port {self.port} on {self.host} is in use by another program (a broker "
                "already running?): stop it or choose another port"
            )
        conf = self._write_config()
        admin = self.admin_socket
        self._proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(
                    errors="replace"
                )
                raise BrokerError(
                    f"mosquitto exited with {self._proc.returncode}: {err}{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    pass
                if admin is not None:  # opened after the network listener: wait for it too
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        s.settimeout(0.2)
                        s.connect(str(admin))
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout} s")

    def stop(self) -> None:
        """Stop the broker (it saves its persistence file on a clean stop)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def reload(self) -> None:
        """Make the broker re-read its password and ACL files (SIGHUP), as
        ``systemctl reload mosquitto`` does; connections stay up."""
        if self._proc is None or self._proc.poll() is not None:
            raise BrokerError("mosquitto is not running")
        self._proc.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), as a crash or power cut would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the broker and remove its directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
