"""The service's streams and buckets on a NATS cluster (``segbind serve init``), the sealed grants
an owner's app sends its service (``segbind serve grant``), and the verdicts an owner's app reads.
nats-py, asyncio."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, NamedTuple, Optional

from ..errors import SegbindError
from .names import DEFAULT_PARTITIONS, MAX_PARTITIONS, Names


class ServiceSetupError(SegbindError):
    """The cluster does not hold the service's streams and buckets as this deployment needs."""


class Layout(NamedTuple):
    partitions: int
    replicas: int


def reachable(servers: "List[str]", timeout: float = 2.0) -> None:
    """ServiceSetupError at once when no server accepts a TCP connection (a wrong address, nothing
    listening): nats-py would keep retrying."""
    import socket
    from urllib.parse import urlsplit

    why = "no server given"
    for url in servers:
        parts = urlsplit(url if "://" in url else "nats://" + url)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout):
                return
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
    raise ServiceSetupError("cannot reach NATS at %s (%s)" % (",".join(servers), why))


def _nats() -> Any:
    try:
        import nats  # noqa: F401
        from nats.js import api
    except ImportError:
        raise ServiceSetupError("the service needs nats-py (pip install 'segbind[service]')") from None
    return api


async def ensure(js: Any, names: Names, partitions: Optional[int] = None, replicas: int = 3,
                 seg_max_age_s: float = 86400.0, verdict_max_age_s: float = 7 * 86400.0,
                 grants_max_age_s: float = 26 * 3600.0) -> Layout:
    """Create what is missing (streams, buckets, the config); what exists is kept. Returns the
    layout in force. ServiceSetupError when the config holds another partition count."""
    api = _nats()
    from nats.js.errors import BucketNotFoundError, NotFoundError

    storage = api.StorageType.FILE
    streams = [
        api.StreamConfig(name=names.seg_stream, subjects=[names.seg_all()], num_replicas=replicas, storage=storage,
                         retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD, max_age=seg_max_age_s,
                         duplicate_window=120.0, max_msg_size=8 << 20, allow_direct=True),
        api.StreamConfig(name=names.verdict_stream, subjects=names.verdict_all(), num_replicas=replicas,
                         storage=storage, retention=api.RetentionPolicy.LIMITS, max_age=verdict_max_age_s,
                         duplicate_window=120.0),
        api.StreamConfig(name=names.grants_stream, subjects=[names.grants_all()], num_replicas=replicas,
                         storage=storage, retention=api.RetentionPolicy.LIMITS, max_age=grants_max_age_s,
                         max_msgs_per_subject=512, max_msg_size=4 << 20),
    ]
    for config in streams:
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
    for bucket in (names.state_bucket, names.lease_bucket):
        try:
            await js.key_value(bucket)
        except BucketNotFoundError:
            await js.create_key_value(api.KeyValueConfig(bucket=bucket, history=1, replicas=replicas,
                                                         storage=storage, direct=True))
    kv = await js.key_value(names.lease_bucket)
    wanted = partitions or DEFAULT_PARTITIONS
    if not 1 <= wanted <= MAX_PARTITIONS:
        raise ServiceSetupError("partitions must be 1 to %d" % MAX_PARTITIONS)
    config = json.dumps({"segbind": "service-config", "version": 1, "partitions": wanted,
                         "replicas": replicas}).encode()
    from nats.js.errors import KeyWrongLastSequenceError

    try:
        await kv.create(Names.CONFIG_KEY, config)
    except KeyWrongLastSequenceError:
        pass
    layout = await read_layout(js, names)
    if partitions is not None and layout.partitions != partitions:
        raise ServiceSetupError("the service on this cluster has %d partitions, not %d (they cannot change while "
                                "it runs: use another --prefix)" % (layout.partitions, partitions))
    return layout


async def read_layout(js: Any, names: Names) -> Layout:
    from nats.js.errors import BucketNotFoundError, KeyNotFoundError

    try:
        kv = await js.key_value(names.lease_bucket)
        entry = await kv.get(Names.CONFIG_KEY)
    except (BucketNotFoundError, KeyNotFoundError):
        raise ServiceSetupError("no segbind service %r on this NATS cluster (run: segbind serve init)"
                                % names.prefix) from None
    try:
        obj = json.loads(entry.value)
        partitions, replicas = int(obj["partitions"]), int(obj["replicas"])
    except (ValueError, KeyError, TypeError):
        raise ServiceSetupError("the service's config in bucket %s is not readable" % names.lease_bucket) from None
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ServiceSetupError("the service's config holds %d partitions" % partitions)
    return Layout(partitions, replicas)


async def publish_grants(js: Any, names: Names, sealed: Dict[str, Any]) -> int:
    """Carry a sealed ``service-grants`` message to the service (what the cloud does for an owner's
    app): on the subject of the account it names as its sender. It stays opaque here."""
    issuer = sealed.get("from") if isinstance(sealed, dict) else None
    if not isinstance(issuer, str) or not issuer:
        raise ServiceSetupError("not a sealed message (no sender)")
    ack = await js.publish(names.grants_subject(issuer), json.dumps(sealed, sort_keys=True).encode())
    return int(ack.seq)


async def read_stream(js: Any, stream: str, subject: str, timeout: float = 1.0) -> List[Any]:
    """Every message of ``stream`` on ``subject`` (wildcards allowed), in stream order, through an
    ephemeral consumer."""
    api = _nats()
    info = await js.stream_info(stream)
    last = info.state.last_seq
    out: List[Any] = []
    if not info.state.messages:
        return out
    sub = await js.pull_subscribe(subject, stream=stream,
                                  config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE,
                                                            deliver_policy=api.DeliverPolicy.ALL,
                                                            inactive_threshold=10.0, mem_storage=True))
    try:
        while True:
            try:
                msgs = await sub.fetch(512, timeout=timeout)
            except asyncio.TimeoutError:
                break
            out += msgs
            if msgs and msgs[-1].metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return out


async def read_verdicts(js: Any, names: Names, account: Optional[str] = None) -> List[Dict[str, Any]]:
    """The verdicts in the stream (an owner's app: its own, ``account``), in order, as JSON."""
    subject = names.verdicts_of(account) if account is not None else "%s.>" % names.prefix
    return [json.loads(m.data) for m in await read_stream(js, names.verdict_stream, subject)]
