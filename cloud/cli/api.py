"""``atp api``: the HTTP gateway to FMAN's interface for third parties, and its tokens."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import time
from pathlib import Path

import click

from ._fmandb import DEFAULT_DB, store_location
from ._listen import listen

DEFAULT_TOKENS = Path(".atp/api-tokens")


def _tokens_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--tokens",
        "tokens_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_TOKENS,
        show_default=True,
        envvar="ATP_API_TOKENS",
        help="Tokens file (hashes only, mode 0600; env ATP_API_TOKENS).",
    )(f)


@click.group()
def api() -> None:
    """The REST gateway to FMAN's interface (docs/interface.md, "HTTP") and its tokens."""


@api.command("serve")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The workers' fman.toml: its store, clock and acceptance rules (needed for writes).",
)
@click.option(
    "--store",
    "--db",
    "db",
    envvar=["ATP_FMAN_STORE", "ATP_FMAN_DB"],
    metavar="PATH|URL",
    help=f"FMAN store: an SQLite file or a postgresql:// URL (default: worker.store of "
    f"--config, else {DEFAULT_DB}). Without --config the gateway only reads.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, help="Port (0: any free one).")
@_tokens_option
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Server certificate (PEM), e.g. the site's broker/server.crt.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its private key (PEM), e.g. the site's broker/server.key.",
)
@click.option(
    "--site-tls",
    "site_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve TLS with the broker's certificate and key of this site directory "
    "(`atp pki`'s broker/server.crt and server.key).",
)
@click.option(
    "--plain-http",
    is_flag=True,
    help="Allow plain HTTP beyond loopback (only behind a proxy that terminates TLS).",
)
@click.option("--rate", default=20.0, show_default=True, help="Requests a second per token.")
@click.option("--burst", default=40, show_default=True, help="Requests at once per token.")
def serve(
    config_path: Path | None,
    db: str | None,
    host: str,
    port: int,
    tokens_path: Path,
    tls_cert: Path | None,
    tls_key: Path | None,
    site_dir: Path | None,
    plain_http: bool,
    rate: float,
    burst: int,
) -> None:
    """Serve the REST API under /api/v1 (OpenAPI document at /api/v1/openapi.json).

    Every request needs a bearer token from `atp api token issue`. Reads answer as the MQTT
    requests do; offers, withdrawals and meter batches go through the workers' ingest, so a
    worker of the same store plans them. Runs beside the workers as its own process."""
    from importlib.metadata import version

    import uvicorn

    from cloud.api import ApiError, Settings, load_tokens, make_app
    from cloud.clock import RealClock
    from cloud.fman.config import load_config
    from cloud.fman.store import describe, is_postgres, open_reader

    from .fman import make_clock

    if site_dir is not None:
        tls_cert = tls_cert or site_dir / "broker" / "server.crt"
        tls_key = tls_key or site_dir / "broker" / "server.key"
    if (tls_cert is None) != (tls_key is None):
        raise click.ClickException("--tls-cert and --tls-key go together")
    for p in (tls_cert, tls_key):
        if p is not None and not p.is_file():
            raise click.ClickException(f"{p}: no such file")
    if tls_cert is None and not plain_http and not _loopback(host):
        raise click.ClickException(
            f"listening on {host} without TLS would send tokens in the clear: pass "
            "--tls-cert/--tls-key or --site-tls, or --plain-http behind a TLS proxy"
        )
    location = store_location(db, config_path)
    if not is_postgres(location) and not Path(location).exists():
        raise click.ClickException(
            f"no FMAN database at {location}: pass --store or --config, or start a worker"
        )
    try:
        config = load_config(config_path) if config_path else None
        open_reader(location).close()
        tokens = load_tokens(tokens_path)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # the configuration's and the store's errors, said in a line
        raise click.ClickException(f"{config_path or describe(location)}: {exc}") from None
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    settings = Settings(
        store=location,
        tokens=tokens_path,
        config=config,
        clock=make_clock(config) if config else RealClock(),
        rate_per_s=rate,
        burst=float(burst),
        version=version("atp-flex"),
    )
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    mode = "reads and writes" if config else "reads only"
    click.echo(
        f"atp api: {scheme}://{shown}:{bound}/api/v1 ({len(tokens)} token(s) in {tokens_path}; "
        f"{mode}; store {describe(location)})"
    )
    sys.stdout.flush()
    uv = uvicorn.Config(
        make_app(settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(uv).run(sockets=[sock])


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@api.group()
def token() -> None:
    """Bearer tokens: one per party (an agent, or an operator's service)."""


@token.command("issue")
@click.argument("party")
@click.option(
    "--role",
    type=click.Choice(["agent", "operator"]),
    default="agent",
    show_default=True,
    help="agent: only PARTY's own data; operator: any agent's, named per request.",
)
@_tokens_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the token to this file (mode 0600) instead of printing it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def issue(party: str, role: str, tokens_path: Path, out: Path | None, as_json: bool) -> None:
    """Issue a token for PARTY. The token is shown (or written to --out) once: the tokens
    file keeps only its hash."""
    from cloud.api import ApiError, issue_token

    try:
        t, secret = issue_token(tokens_path, party=party, role=role, now=int(time.time()))  # type: ignore[arg-type]  # click.Choice checked role
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        os.chmod(out, 0o600)
    info = {"id": t.id, "party": t.party, "role": t.role, "file": str(out) if out else None}
    if as_json:
        click.echo(json.dumps({**info, "token": None if out else secret}))
        return
    click.echo(f"issued token {t.id} for {party} ({role}) in {tokens_path}", err=True)
    click.echo(f"written to {out} (mode 0600)" if out else secret)


@token.command("revoke")
@click.argument("token_id", required=False)
@click.option("--party", help="Revoke every token of this party instead.")
@_tokens_option
def revoke(token_id: str | None, party: str | None, tokens_path: Path) -> None:
    """Revoke the token TOKEN_ID (or every token of --party); a running gateway stops
    taking it at its next request."""
    from cloud.api import ApiError, revoke_tokens

    if (token_id is None) == (party is None):
        raise click.ClickException("name a TOKEN_ID or --party, not both")
    try:
        n = revoke_tokens(tokens_path, token_id=token_id, party=party)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    if n == 0:
        raise click.ClickException(f"no such token in {tokens_path}")
    click.echo(f"revoked {n} token(s)")


@token.command("list")
@_tokens_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_tokens(tokens_path: Path, as_json: bool) -> None:
    """The tokens: id, role, party and when issued (never their hashes)."""
    from cloud.api import ApiError, load_tokens

    try:
        tokens = load_tokens(tokens_path)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        rows = [
            {"id": t.id, "role": t.role, "party": t.party, "created": t.created}
            for t in tokens.values()
        ]
        click.echo(json.dumps(rows))
        return
    for t in tokens.values():
        issued = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.created))
        click.echo(f"{t.id}  {t.role:<8}  {t.party}  issued {issued} UTC")
    if not tokens:
        click.echo(f"no tokens in {tokens_path}")
