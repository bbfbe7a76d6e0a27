"""The command line's NATS settings: the server URL (flag or NATS_URL) and the
authentication flags, whose secrets are read from files."""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.urls import check_nats_urls

__all__ = [
    "DEFAULT_NATS_URL",
    "connection_options",
    "nats_options",
    "nats_servers",
    "read_secret",
    "url_option",
]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_URL_ENV = "NATS_URL"


def url_option(parser: argparse.ArgumentParser, several: bool = True) -> None:
    """`--nats-url` (and its old spelling `--nats`, kept working but not shown)."""
    what = "NATS server URL, or several separated by commas" if several else "NATS server URL"
    parser.add_argument(
        "--nats-url",
        metavar="URL",
        help=f"{what} (default: ${NATS_URL_ENV} if set, else {DEFAULT_NATS_URL})",
    )
    parser.add_argument(
        "--nats", dest="nats_url", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def nats_servers(args: argparse.Namespace) -> str | list[str]:
    """The NATS URL(s) of `--nats-url`, else of the NATS_URL variable, else the local default.

    Raises:
        ConfigurationError: a URL nats-py cannot use, named with where it came from.
    """
    given, source = args.nats_url, "--nats-url"
    if given is None:
        given, source = os.environ.get(NATS_URL_ENV) or DEFAULT_NATS_URL, NATS_URL_ENV
    urls = [url.strip() for url in given.split(",") if url.strip()]
    try:
        check_nats_urls(urls)
    except ConfigurationError as e:
        raise ConfigurationError(f"{source}: {e}") from None
    return urls[0] if len(urls) == 1 else urls


def connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "NATS authentication", "secrets are read from files, so that they stay out of `ps`"
    )
    group.add_argument("--creds", metavar="FILE", help="a .creds file (`nsc generate creds`)")
    group.add_argument("--nkey-seed", metavar="FILE", help="a file holding an NKey user seed")
    group.add_argument("--user", help="user name (with --password-file)")
    group.add_argument("--password-file", metavar="FILE", help="a file holding the password")
    group.add_argument("--token-file", metavar="FILE", help="a file holding the token")
    group.add_argument(
        "--tls-ca", metavar="FILE", help="trust the CA certificate(s) in this PEM file"
    )
    group.add_argument(
        "--inbox-prefix",
        metavar="PREFIX",
        help="reply subjects under PREFIX instead of _INBOX (per-tenant permissions)",
    )


def nats_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `nats.connect` options of the authentication flags, files checked and read.

    Raises:
        ConfigurationError: a file cannot be read or holds nothing usable.
    """
    options: dict[str, Any] = {}
    if args.creds:
        options["user_credentials"] = _readable(args.creds, "--creds")
    if args.nkey_seed:
        options["nkeys_seed"] = _readable(args.nkey_seed, "--nkey-seed")
    if args.password_file and not args.user:
        raise ConfigurationError("--password-file needs --user")
    if args.user:
        options["user"] = args.user
    if args.password_file:
        options["password"] = read_secret(args.password_file, "--password-file")
    if args.token_file:
        options["token"] = read_secret(args.token_file, "--token-file")
    if args.tls_ca:
        options["tls"] = _trusting(args.tls_ca)
    if args.inbox_prefix:
        options["inbox_prefix"] = args.inbox_prefix
    return options


# The value of a secret flag is never repeated: it may be the secret itself, given by mistake.
def _readable(path: str, flag: str) -> str:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigurationError(f"{flag} names no readable file")
    return path


def read_secret(path: str, flag: str) -> str:
    try:
        with open(_readable(path, flag), encoding="utf-8") as file:
            secret = file.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{flag}: cannot read the file ({type(e).__name__})") from None
    if not secret:
        raise ConfigurationError(f"{flag}: the file is empty")
    return secret


def _trusting(path: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=_readable(path, "--tls-ca"))
    except (OSError, ssl.SSLError) as e:
        raise ConfigurationError(
            f"--tls-ca: no CA certificate could be loaded from {path!r} ({e}); "
            "it should be a PEM file"
        ) from None
