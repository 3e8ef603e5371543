"""Gateway bundles: everything a box needs to install the agent with no network at all.

    foa-bundle-AGENT.tar.gz  (mode 0600: it holds the agent's secrets)
      foa-bundle/
        install.sh            deploy/gateway/install.sh
        manifest.json         agent, platform, Python, and the SHA-256 of every file
        wheels/               atp-flex and its base dependencies (no cloud extra), and pip
        etc/                  foa.toml, password, ca.crt, client.crt/client.key when issued
        systemd/foa.service   deploy/systemd/foa.service

Dependencies come as wheels only (``--only-binary=:all:``), so the box never compiles. For
a platform other than the one building (a Raspberry Pi from a PC), pip downloads the wheels
for ``platforms`` and ``python_version``; PyPI carries them for 64-bit ARM
(``manylinux2014_aarch64``), while for 32-bit ARM (armv7l) the compiled ones (msgspec,
msgpack) must come from a ``wheelhouse`` built on such a box.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from ._errors import BundleError
from ._files import SECRET_MODE
from ._site import Site, now_s

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEPLOY_DIR = PROJECT_DIR / "deploy"
TOP = "foa-bundle"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Which machine the wheels are for; all ``None`` means the machine building."""

    platforms: tuple[str, ...] = ()
    python_version: str | None = None  # "3.11"
    wheelhouse: Path | None = None

    def pip_args(self) -> list[str]:
        args: list[str] = []
        for p in self.platforms:
            args += ["--platform", p]
        if self.python_version:
            args += ["--python-version", self.python_version, "--implementation", "cp"]
        if self.wheelhouse:
            args += ["--find-links", str(self.wheelhouse)]
        return args


def _pip(args: Sequence[str], what: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        tail = "\n".join([ln for ln in lines if not ln.startswith("WARNING:")][-8:])
        raise BundleError(f"{what} failed (pip exit {proc.returncode}):\n{tail}")


def base_requirements(wheel: Path) -> list[str]:
    """The wheel's ``Requires-Dist`` entries that hold without any extra: the agent's."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(name).decode())
    return [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]


#: What the wheel is built from (pyproject.toml's packages, and what its metadata names).
_SOURCE = ("pyproject.toml", "README.md", "protocol", "agent", "cloud")


def _clean_source(dest: Path) -> Path:
    """A copy of the project's sources alone: setuptools writes ``build/`` beside what it
    builds, and a stale ``build/lib`` in the checkout could slip old modules into a wheel."""
    dest.mkdir(parents=True)
    for name in _SOURCE:
        src = PROJECT_DIR / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_bundle(
    site: Site,
    agent_id: str,
    out_dir: Path,
    *,
    target: Target = Target(),
    step: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Build ``out_dir/foa-bundle-AGENT.tar.gz`` and return its path."""
    try:
        return _build(site, agent_id, out_dir, target=target, step=step)
    except OSError as exc:
        raise BundleError(f"cannot build the bundle: {exc}") from exc


def _build(
    site: Site,
    agent_id: str,
    out_dir: Path,
    *,
    target: Target = Target(),
    step: Callable[[str], None],
) -> Path:
    account = site.account(agent_id)
    if account.role != "agent" or not account.active:
        raise BundleError(f"{agent_id!r} is not an active agent of {site.root}")
    device = site.device_dir(agent_id)
    if not (device / "foa.toml").exists():
        raise BundleError(f"{device / 'foa.toml'} is missing: run `atp device add --rotate`")
    if not (PROJECT_DIR / "pyproject.toml").exists():
        raise BundleError(f"{PROJECT_DIR} is not a source checkout: bundles are built from one")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".bundle-") as tmp:
        top = Path(tmp) / TOP
        wheels = top / "wheels"
        step("building the atp-flex wheel")
        source = _clean_source(Path(tmp) / "src")
        _pip(
            ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)],
            "building the atp-flex wheel",
        )
        own = next(wheels.glob("atp_flex-*.whl"))
        requirements = base_requirements(own)
        step(f"downloading {len(requirements)} base dependencies and pip as wheels")
        _pip(
            [
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--dest",
                str(wheels),
                *target.pip_args(),
                "pip",
                *requirements,
            ],
            "downloading the dependencies' wheels",
        )
        step("adding the configuration, credentials, unit and installer")
        etc = top / "etc"
        etc.mkdir()
        for name in ("foa.toml", "password", "ca.crt", "client.crt", "client.key"):
            if (device / name).exists():
                shutil.copy2(device / name, etc / name)  # copy2 keeps 0600
        (top / "systemd").mkdir()
        shutil.copy2(DEPLOY_DIR / "systemd" / "foa.service", top / "systemd" / "foa.service")
        shutil.copy2(DEPLOY_DIR / "gateway" / "install.sh", top / "install.sh")
        files = sorted(p for p in top.rglob("*") if p.is_file())
        manifest = {
            "agent": agent_id,
            "created": now_s(),
            "platforms": list(target.platforms) or ["this machine's"],
            "python_version": target.python_version or ".".join(map(str, sys.version_info[:2])),
            "files": {str(p.relative_to(top)): _sha256(p) for p in files},
        }
        (top / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        step("writing the archive")
        archive = out_dir / f"foa-bundle-{agent_id}.tar.gz"
        partial = Path(tmp) / archive.name
        partial.touch(mode=SECRET_MODE)
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(top, arcname=TOP)
        partial.chmod(SECRET_MODE)
        partial.replace(archive)
    return archive
