"""Who may read what: bearer tokens, development mode, and confining a query to what its
token grants."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from starlette.requests import Request

from mistral_workflows.core.errors import TokenError
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.gateway._problems import Problem
from mistral_workflows.gateway._tokens import Grant, verify_token

__all__ = ["Access", "TreeLookup", "is_loopback", "local_only"]

log = logging.getLogger("mistral_workflows.gateway")

TreeLookup = Callable[[str, str, str | None], Awaitable[bool | None]]
"""`(exec_id, root, namespace)`: whether any run of the execution id belongs to the tree of
`root` in the namespace (None: no event of that id yet)."""

_DEVELOPMENT = Grant(namespace=None)


class Access:
    """Checks bearer tokens with `secret`; without one (development mode) anyone on this
    machine reads all, and nobody else reads anything."""

    def __init__(self, secret: bytes | None) -> None:
        self._secret = secret

    @property
    def development(self) -> bool:
        """Whether any bearer token (or none) is accepted."""
        return self._secret is None

    def grant(self, request: Request) -> Grant:
        """What the request's token grants.

        The token is the `Authorization: Bearer` header, or the `access_token` query
        parameter for browsers' `EventSource`, which cannot set headers.

        Raises:
            Problem: 401 when a secret is set and the token is missing or invalid; 403 in
                development mode when either end of the connection is not a loopback address.
        """
        if self._secret is None:
            local_only(request.scope)
            return _DEVELOPMENT
        token = _bearer(request)
        if token is None:
            raise Problem(
                401,
                "unauthorized",
                "a bearer token is required (Authorization: Bearer <token>, or the "
                "access_token query parameter); mint one with `mistral-workflows token`",
            )
        try:
            return verify_token(self._secret, token)
        except TokenError as e:
            raise Problem(401, "unauthorized", str(e)) from None

    async def confine(self, wanted: EventFilter, grant: Grant, in_tree: TreeLookup) -> EventFilter:
        """The filter narrowed to the grant's namespace and tree.

        Raises:
            Problem: 403 when the filter names another namespace or another tree.
        """
        await check(wanted, grant, in_tree)
        if grant.namespace is not None:
            wanted = replace(wanted, namespace=grant.namespace)
        if grant.root_workflow_exec_id is not None:
            wanted = replace(wanted, root_workflow_exec_id=grant.root_workflow_exec_id)
        return wanted


async def check(wanted: EventFilter, grant: Grant, in_tree: TreeLookup) -> None:
    """Refuse (403) filters outside the grant.

    Raises:
        Problem: 403 naming what the token does not cover.
    """
    namespace = wanted.namespace
    if grant.namespace is not None and namespace not in (None, grant.namespace):
        raise _forbidden("namespace", "this token is for another namespace")
    root = grant.root_workflow_exec_id
    if root is None:
        return
    if wanted.root_workflow_exec_id not in (None, root):
        raise _forbidden("root_workflow_exec_id", "this token is for another workflow tree")
    for name in ("workflow_exec_id", "parent_workflow_exec_id"):
        exec_id = getattr(wanted, name)
        if exec_id is None or exec_id == root:
            continue
        # Reading stays confined to the tree by the subject filter whatever this finds;
        # the lookup only turns a request for another tree into a clear refusal. An id may
        # be reused by runs in several trees: any run in this tree lets the token read it,
        # and it reads those runs only.
        if await in_tree(exec_id, root, grant.namespace) is False:
            raise _forbidden(name, "this execution belongs to another workflow tree")


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_only(scope: Mapping[str, Any]) -> None:
    """Refuse (403) a connection unless both its ends are loopback addresses.

    This is the rule of development mode wherever the app runs: the command refuses to
    bind elsewhere, and the app itself, which cannot know where it is bound, checks each
    connection (a server that does not report an address is refused too).

    Raises:
        Problem: 403 saying that a token secret is needed.
    """
    ends = [scope.get("client"), scope.get("server")]
    if all(end and isinstance(end[0], str) and is_loopback(end[0]) for end in ends):
        return
    raise Problem(
        403,
        "forbidden",
        "development mode (no token secret) only answers connections from this machine; "
        "set a secret (GatewaySettings.secret, --secret-file or the "
        "MISTRAL_WORKFLOWS_GATEWAY_SECRET variable) to serve other addresses",
    )


def _forbidden(parameter: str, reason: str) -> Problem:
    return Problem(403, "forbidden", f"{parameter}: {reason}")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.query_params.get("access_token") or None
