"""Opt-in encryption of task state, keyed like Temporal's payload codec.

The user supplies keys by id; the active key encrypts, every key decrypts, so keys rotate
by id. Events are encrypted in the worker right before serialisation, so the stored bytes
hold no plain text of the protected state, while the envelope (ids, types, sequence
numbers, subjects) stays readable for filtering and ordering.

Wire format (mirroring the official Mistral client's shapes):

- whole payload, a state: `{"type": "json", "value": "<token>", "encoding_options":
  ["encrypted"]}`;
- a JSON patch: each op's `value` becomes `{"type": "__encrypted__", "value": "<token>"}`
  (op names and paths stay readable), with `"encoding_options": ["encrypted-partial"]`;
- marked fields: the same wrapper in place of each marked top-level field's value, in
  states and in ops on those fields (each `append` suffix separately: a consumer
  decrypts each and appends the plain texts).

A token is base64 of `0x01 | len(key id) | key id | 12-byte nonce | AES-256-GCM
ciphertext and tag` over the JSON of the value. The associated data is `0x01 | len(key
id) | key id | event id | 0x00 | where`, `where` being "" for a whole state, "/<field>" for
a field of a state, and "<op index>:<op>:<path>" for an op's value ("<op index>:<op>:
/<field>" for a field of a root op's value), so a token cannot be moved to another event
or place. Nonces are synthetic (an HMAC of the associated data and the plain text under a
key derived from the key): the same event always encrypts to the same bytes, which keeps
workflow code deterministic; decryption needs only the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from mistral_workflows.core.errors import ConfigurationError, DecryptionError
from mistral_workflows.core.events import JSONPatchPayload, JSONPayload, StreamEvent
from mistral_workflows.core.pointer import escape, unescape

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["ENCRYPTED", "Encryption", "sealed_with"]

ENCRYPTED = "__encrypted__"
"""The `type` of the wrapper that replaces an encrypted value (the official
`EncryptedPatchValue`)."""

_VERSION = 1
_NONCE = 12
_TAG = 16
_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NONCE_LABEL = b"mistral-workflows/synthetic-nonce"


def _aesgcm() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ConfigurationError(
            "encrypting task state needs the cryptography package: "
            "pip install 'mistral-workflows[encryption]'"
        ) from None
    return AESGCM


class _Key:
    def __init__(self, key_id: object, key: object, aesgcm: type[AESGCM]) -> None:
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise ConfigurationError(
                f"key id {key_id!r} must be 1-64 characters of A-Z a-z 0-9 _ . -"
            )
        if not isinstance(key, bytes) or len(key) != _KEY_BYTES:
            raise ConfigurationError(
                f"key {key_id!r} must be {_KEY_BYTES} bytes (AES-256), e.g. os.urandom(32) "
                "or bytes.fromhex(<64 hex digits>) read from your secret store"
            )
        self.id = key_id
        self.header = bytes([_VERSION, len(key_id)]) + key_id.encode()
        self.aead = aesgcm(key)
        self.nonce_key = hmac.digest(key, _NONCE_LABEL, hashlib.sha256)


class Encryption:
    """Encrypts task state in workers and decrypts it in consumers (AES-256-GCM).

    Give the same keys to `MistralWorkflowsPlugin(encryption=...)` and to
    `subscribe(encryption=...)` or `TaskStates(encryption=...)`.

    Args:
        keys: Key id -> 32-byte key. Every key decrypts; keep old keys while events
            encrypted with them are in the stream.
        active: The id of the key that encrypts: required by the plugin when there are
            several keys; consumers only decrypt and need not name it.
        fields: Top-level state fields to encrypt; None (the default) encrypts the whole
            state of every event.

    Raises:
        ConfigurationError: a key is not 32 bytes, an id is invalid, `active` is unknown,
            or the `cryptography` package is not installed.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        active: str | None = None,
        fields: Iterable[str] | None = None,
    ) -> None:
        aesgcm = _aesgcm()
        if not isinstance(keys, Mapping) or not keys:
            raise ConfigurationError("keys must be a non-empty mapping of key id to key bytes")
        self._keys = {key_id: _Key(key_id, key, aesgcm) for key_id, key in keys.items()}
        self.fields: frozenset[str] | None = None if fields is None else _field_names(fields)
        if active is None and len(keys) == 1:
            active = next(iter(keys))
        if active is not None and active not in self._keys:
            raise ConfigurationError(
                f"active must name the key that encrypts, one of {sorted(self._keys)}, "
                f"not {active!r}"
            )
        self.active: str | None = active

    def __repr__(self) -> str:
        fields = None if self.fields is None else sorted(self.fields)
        return f"Encryption(keys={sorted(self._keys)}, active={self.active!r}, fields={fields})"

    def encrypt_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The event `body` with its task state encrypted (a new dict; `body` is unchanged)."""
        data = body.get("data")
        attributes = data.get("attributes") if isinstance(data, dict) else None
        payload = attributes.get("payload") if isinstance(attributes, dict) else None
        if not isinstance(payload, dict) or "encoding_options" in payload:
            return body
        assert isinstance(data, dict) and isinstance(attributes, dict)
        sealed = self._seal_payload(payload, str(data["event_id"]))
        if sealed is payload:
            return body
        return {**body, "data": {**data, "attributes": {**attributes, "payload": sealed}}}

    def decrypt_event(self, event: StreamEvent) -> StreamEvent:
        """`event` with its task state decrypted (events without encrypted state as they are).

        Raises:
            DecryptionError: a value was encrypted with a key id this object does not hold,
                with another key of the same id, or was altered.
        """
        data = event.data
        attributes = getattr(data, "attributes", None)
        payload = getattr(attributes, "payload", None)
        if payload is None:
            return event
        opened = self._open_payload(payload, data.event_id)
        if opened is payload:
            return event
        assert attributes is not None
        attrs = attributes.model_copy(update={"payload": opened})
        return event.model_copy(update={"data": data.model_copy(update={"attributes": attrs})})

    def _seal_payload(self, payload: dict[str, Any], event_id: str) -> dict[str, Any]:
        value = payload.get("value")
        if payload.get("type") == "json_patch" and isinstance(value, list):
            ops = [self._seal_op(i, op, event_id) for i, op in enumerate(value)]
            if all(new is old for new, old in zip(ops, value, strict=True)):
                return payload
            return {**payload, "value": ops, "encoding_options": ["encrypted-partial"]}
        if payload.get("type") != "json":
            return payload
        if self.fields is None:
            token = self._seal(value, event_id, "")
            return {**payload, "value": token, "encoding_options": ["encrypted"]}
        if isinstance(value, orjson.Fragment):  # a snapshot's state, serialised once
            value = orjson.loads(orjson.dumps(value))
        sealed = self._seal_fields(value, event_id, "")
        if sealed is value:
            return payload
        return {**payload, "value": sealed, "encoding_options": ["encrypted-partial"]}

    def _seal_op(self, index: int, op: Any, event_id: str) -> Any:
        if not isinstance(op, dict) or "value" not in op:
            return op
        path, where = op.get("path"), f"{index}:{op.get('op')}:"
        if not isinstance(path, str):
            return op
        if self.fields is None or _field(path) in self.fields:
            return {**op, "value": _wrap(self._seal(op["value"], event_id, where + path))}
        if path == "":
            sealed = self._seal_fields(op["value"], event_id, where)
            return op if sealed is op["value"] else {**op, "value": sealed}
        return op

    def _seal_fields(self, state: Any, event_id: str, where: str) -> Any:
        if not isinstance(state, dict) or self.fields is None:
            return state
        marked = [k for k in state if k in self.fields]
        if not marked:
            return state
        sealed = dict(state)
        for key in marked:
            sealed[key] = _wrap(self._seal(state[key], event_id, f"{where}/{escape(key)}"))
        return sealed

    def _seal(self, value: Any, event_id: str, where: str) -> str:
        assert self.active is not None, "checked by the plugin"
        key = self._keys[self.active]
        plain = orjson.dumps(value)
        aad = _associated(key.header, event_id, where)
        mac = hmac.new(key.nonce_key, len(aad).to_bytes(4, "big") + aad, hashlib.sha256)
        mac.update(plain)
        nonce = mac.digest()[:_NONCE]
        return base64.b64encode(key.header + nonce + key.aead.encrypt(nonce, plain, aad)).decode()

    def _open_payload(self, payload: Any, event_id: str) -> Any:
        if isinstance(payload, JSONPatchPayload):
            ops = [self._open_op(i, op, event_id) for i, op in enumerate(payload.value)]
            if all(new is old for new, old in zip(ops, payload.value, strict=True)):
                return payload
            return payload.model_copy(update={"value": ops})
        if not isinstance(payload, JSONPayload):
            return payload
        if isinstance(payload.value, str):
            return payload.model_copy(update={"value": self._open(payload.value, event_id, "")})
        opened = self._open_fields(payload.value, event_id, "")
        return payload if opened is payload.value else payload.model_copy(update={"value": opened})

    def _open_op(self, index: int, op: dict[str, Any], event_id: str) -> dict[str, Any]:
        value, where = op.get("value"), f"{index}:{op.get('op')}:"
        if isinstance(value, dict) and _is_wrapped(value):
            return {**op, "value": self._open(value["value"], event_id, f"{where}{op['path']}")}
        if op.get("path") == "":
            opened = self._open_fields(value, event_id, where)
            return op if opened is value else {**op, "value": opened}
        return op

    def _open_fields(self, state: Any, event_id: str, where: str) -> Any:
        if not isinstance(state, dict) or not any(_is_wrapped(v) for v in state.values()):
            return state
        return {
            k: self._open(v["value"], event_id, f"{where}/{escape(k)}") if _is_wrapped(v) else v
            for k, v in state.items()
        }

    def _open(self, token: str, event_id: str, where: str) -> Any:
        key_id, header, body = _split(token, event_id)
        key = self._keys.get(key_id)
        if key is None:
            raise DecryptionError(
                f"event {event_id} was encrypted with key id {key_id!r}, which is not among "
                f"this consumer's keys {sorted(self._keys)}: add it to Encryption(keys=...)"
            )
        from cryptography.exceptions import InvalidTag

        try:
            plain = key.aead.decrypt(
                body[:_NONCE], body[_NONCE:], _associated(header, event_id, where)
            )
        except InvalidTag:
            raise DecryptionError(
                f"could not decrypt event {event_id} with key {key_id!r}: this is not the key "
                "that encrypted it (same id, other bytes), or the value was altered or moved "
                "from another event"
            ) from None
        return orjson.loads(plain)


def sealed_with(event: StreamEvent) -> str | None:
    """The key id of the first encrypted value in `event`'s task state, or None if its state
    is in clear ("?" for an encrypted value whose key id cannot be read)."""
    payload = getattr(getattr(event.data, "attributes", None), "payload", None)
    tokens: list[Any] = []
    if isinstance(payload, JSONPatchPayload):
        for op in payload.value:
            value = op.get("value")
            tokens += [value] if _is_wrapped(value) else _wrapped_fields(value)
    elif isinstance(payload, JSONPayload):
        tokens = [payload.value] if isinstance(payload.value, str) else []
        tokens += _wrapped_fields(payload.value)
    if not tokens:
        return None
    token = tokens[0]["value"] if isinstance(tokens[0], dict) else tokens[0]
    try:
        return _split(token, event.data.event_id)[0]
    except DecryptionError:
        return "?"


def _wrapped_fields(state: Any) -> list[Any]:
    return [v for v in state.values() if _is_wrapped(v)] if isinstance(state, dict) else []


def _split(token: str, event_id: str) -> tuple[str, bytes, bytes]:
    """The key id, the header and the nonce + ciphertext of a token."""
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    size = raw[1] if len(raw) > 1 else 0
    header, body = raw[: 2 + size], raw[2 + size :]
    if not raw or raw[0] != _VERSION or len(body) < _NONCE + _TAG:
        raise DecryptionError(f"event {event_id} holds a value that is not an encrypted token")
    try:
        return header[2:].decode("ascii"), header, body
    except UnicodeDecodeError:
        raise DecryptionError(f"event {event_id} holds a token with an invalid key id") from None


def _associated(header: bytes, event_id: str, where: str) -> bytes:
    return header + event_id.encode() + b"\x00" + where.encode()


def _wrap(token: str) -> dict[str, str]:
    return {"type": ENCRYPTED, "value": token}


def _is_wrapped(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 2
        and value.get("type") == ENCRYPTED
        and isinstance(value.get("value"), str)
    )


def _field(path: str) -> str | None:
    """The top-level field a JSON pointer goes into (None for the root)."""
    if not path.startswith("/"):
        return None
    return unescape(path[1:].split("/", 1)[0])


def _field_names(fields: Iterable[str]) -> frozenset[str]:
    names = frozenset(() if isinstance(fields, str) else fields)
    if isinstance(fields, str) or not all(isinstance(f, str) for f in names):
        raise ConfigurationError(
            f"fields must be a collection of top-level field names, e.g. "
            f"fields={{'api_key'}}, not {fields!r}"
        )
    if not names:
        raise ConfigurationError("fields is empty: leave it out to encrypt the whole state")
    return names
