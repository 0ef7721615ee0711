"""``segbind serve worker``: one worker process of the verifying service, on NATS JetStream
(nats-py, asyncio). Any number of them, on any machines, share the partitions of the cameras
(docs/SERVICE.md). The decisions are sans-I/O (``lease``, ``judge``); this module carries them out.

For each partition it holds, a worker reads the segment stream from the partition's checkpoint
through a consumer of its own (named after the lease's token), and for each batch:

1. judges every segment in order (``judge.Judge``), reading each stream's record from the state
   bucket the first time it meets the stream;
2. writes the plaintext of every accepted segment to the owner's recording (files), and publishes
   every verdict to the verdict stream, and waits until they are durable;
3. writes each changed stream record with compare-and-set on the revision it read: a refusal
   means another worker holds the partition now, and this one stops judging it at once;
4. moves the partition's checkpoint, which the next lease renewal carries.

A segment is published before its state is written, so a crash between the two makes the next
holder judge it again from the same record, to the same verdict: nothing is lost, nothing is
judged to two different verdicts. Before each write the worker checks that its lease is still
valid on its own clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from ..grants import Service
from ..verdict import Reason, Verdict
from .admin import ServiceSetupError, reachable, read_layout
from .faults import Faults
from .judge import Judge, NeedState, Outcome
from .keys import MixedUpKeys, ServiceKeys
from .lease import LEASE_S, Acquire, Coordinator, Lease, Release, Renew, Start, Stop, Write
from .names import Names, token

log = logging.getLogger("segbind.service")

EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071


class Settings(NamedTuple):
    servers: Sequence[str]
    service_path: str
    prefix: str = "segbind"
    recording: Optional[str] = None
    worker_id: str = ""
    batch: int = 256
    lease_s: float = LEASE_S
    stats_path: Optional[str] = None
    user_credentials: Optional[str] = None


class PubError(Exception):
    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__("%s (%s/%s)" % (description, code, err_code))
        self.code, self.err_code = code, err_code


class Acks:
    """JetStream publishes in flight together, answered on one inbox (nats-py's own
    ``publish_async`` loses an error answer: it raises in its callback)."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.prefix = ""
        self._pending: Dict[str, "asyncio.Future[int]"] = {}
        self._n = 0

    async def start(self) -> "Acks":
        self.prefix = self.nc.new_inbox()
        await self.nc.subscribe(self.prefix + ".*", cb=self._answer)
        return self

    async def publish(self, subject: str, payload: bytes,
                      headers: Optional[Dict[str, str]] = None) -> "asyncio.Future[int]":
        self._n += 1
        tok = str(self._n)
        fut: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
        self._pending[tok] = fut
        fut.add_done_callback(lambda _f: self._pending.pop(tok, None))
        try:
            await self.nc.publish(subject, payload, reply=self.prefix + "." + tok, headers=headers)
        except Exception as exc:  # not connected, closed: an answer that will never come
            if not fut.done():
                fut.set_exception(PubError(0, 0, "not sent: %s" % type(exc).__name__))
        return fut

    async def _answer(self, msg: Any) -> None:
        fut = self._pending.get(msg.subject[len(self.prefix) + 1:])
        if fut is None or fut.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            fut.set_exception(PubError(503, 0, "no stream answered"))
            return
        try:
            answer = json.loads(msg.data)
            error = answer.get("error")
            if error:
                fut.set_exception(PubError(int(error.get("code", 0)), int(error.get("err_code", 0)),
                                           str(error.get("description", ""))))
            else:
                fut.set_result(int(answer["seq"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            fut.set_exception(PubError(0, 0, "an answer that is not a JetStream ack"))

    @staticmethod
    async def settle(futures: Sequence["asyncio.Future[int]"], timeout: float) -> List[Any]:
        """Each future's seq, or its exception (TimeoutError for no answer in time)."""
        if futures:
            await asyncio.wait(futures, timeout=timeout)
        out: List[Any] = []
        for fut in futures:
            if not fut.done():
                fut.cancel()
                out.append(asyncio.TimeoutError())
            elif fut.cancelled():
                out.append(asyncio.TimeoutError())
            else:
                exc = fut.exception()
                out.append(exc if exc is not None else fut.result())
        return out


class Recording:
    """The owner's recording, as files: ROOT/<account>/<camera>/<stream id>/<seq>.h264, each the
    decrypted segment as a decoder takes it, written whole (a temporary file, then renamed): a
    segment judged again is written again, to the same bytes."""

    def __init__(self, root: str) -> None:
        self.root = str(root)
        self._dirs: Set[str] = set()
        self._pid = os.getpid()

    def write(self, outcome: Outcome) -> None:
        tag = outcome.verdict.tag
        if tag is None or outcome.plaintext is None:
            return
        # plain strings and os calls: a file per accepted segment, so this is on the hot path
        directory = os.path.join(self.root, token(outcome.account), token(outcome.camera), str(tag.stream_id))
        if directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        tmp = "%s/.%010d.%d.tmp" % (directory, tag.seq, self._pid)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(outcome.plaintext)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, "%s/%010d.h264" % (directory, tag.seq))


def verdict_json(outcome: Outcome, worker: str) -> bytes:
    """A verdict as the owner's app reads it (never key material)."""
    data = outcome.verdict.as_dict()
    data.update(stream_seq=outcome.seq, camera=outcome.camera, account=outcome.account, worker=worker)
    if outcome.rejudged:
        data["rejudged"] = True
    return json.dumps(data, separators=(",", ":")).encode()


class _Run:
    """A partition being judged: its task, its judge, why it stops."""

    def __init__(self, partition: int, lease: Lease, judge: Judge) -> None:
        self.partition = partition
        self.lease = lease
        self.judge = judge
        self.stop_why = ""
        self.consumer = ""
        self.task: Optional["asyncio.Task[None]"] = None


class _Lost(Exception):
    pass


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = Names(settings.prefix)
        self.worker_id = settings.worker_id or "%s-%d-%s" % (socket.gethostname()[:20], os.getpid(),
                                                              os.urandom(2).hex())
        self.faults = Faults()
        self.service_path = settings.service_path
        self.service = Service.load(settings.service_path)
        self._service_mtime = os.stat(settings.service_path).st_mtime_ns
        self.keys: ServiceKeys = (MixedUpKeys if self.faults.keys_mixup else ServiceKeys)(self.service)
        self.recording = Recording(settings.recording) if settings.recording else None
        self.runs: Dict[int, _Run] = {}
        self.counts: Dict[str, int] = {"batches": 0, "verdicts": 0, "verdict_retries": 0, "state_writes": 0,
                                       "state_refused": 0, "consumers": 0, "judged": 0, "accepted": 0,
                                       "refused": 0, "skipped": 0, "rejudged": 0, "recorded": 0}
        self._stopping = False
        self._grants_seq = 0
        self.coord: Optional[Coordinator] = None
        self.nc: Any = None
        self.js: Any = None

    # -- the process -------------------------------------------------------------------------------

    async def run(self) -> None:
        import nats

        reachable(list(self.settings.servers))
        try:  # once connected it reconnects for ever; the first connection gets 15 s
            self.nc = await asyncio.wait_for(nats.connect(
                servers=list(self.settings.servers), name="segbind-worker " + self.worker_id,
                max_reconnect_attempts=-1, reconnect_time_wait=0.5, user_credentials=self.settings.user_credentials,
                error_cb=self._nats_error, disconnected_cb=self._nats_down, reconnected_cb=self._nats_up,
                connect_timeout=5), 15.0)
        except Exception as exc:  # nats-py: NoServersError, OSError, timeouts
            raise ServiceSetupError("cannot reach NATS at %s (%s)" % (",".join(self.settings.servers),
                                                                      type(exc).__name__)) from None
        self.js = self.nc.jetstream(timeout=5.0)
        try:
            layout = await read_layout(self.js, self.names)
            self.kv_state = await self.js.key_value(self.names.state_bucket)
            self.kv_lease = await self.js.key_value(self.names.lease_bucket)
        except ServiceSetupError:
            await self.nc.close()
            raise
        self.partitions = layout.partitions
        self.acks = await Acks(self.nc).start()
        self.coord = Coordinator(self.worker_id, self.partitions, self.settings.lease_s)
        await self._follow_grants()
        await self.nc.subscribe(self.names.heartbeat, cb=self._heartbeat)
        log.info("worker %s: %d partitions, %d accounts, %d cameras granted", self.worker_id, self.partitions,
                 len(self.keys.accounts()), len(self.keys.cameras()))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        stats = asyncio.ensure_future(self._stats_loop())
        try:
            await self._coordinate()
        finally:
            stats.cancel()
            await self._shutdown()
            self._write_stats()

    def _stop(self) -> None:
        self._stopping = True

    async def _nats_error(self, exc: Exception) -> None:
        log.debug("nats: %s", type(exc).__name__)

    async def _nats_down(self) -> None:
        log.info("worker %s: disconnected from NATS", self.worker_id)

    async def _nats_up(self) -> None:
        log.info("worker %s: reconnected to NATS", self.worker_id)

    # -- keys: the owners' sealed grants -----------------------------------------------------------

    async def _follow_grants(self, timeout: float = 60.0) -> None:
        """Take every sealed grants message in the stream, then keep taking new ones as they come."""
        from nats.js.api import DeliverPolicy

        info = await self.js.stream_info(self.names.grants_stream)
        target = info.state.last_seq if info.state.messages else 0
        caught_up = asyncio.Event()
        if self._grants_seq >= target:
            caught_up.set()

        async def take(msg: Any) -> None:
            seq = msg.metadata.sequence.stream
            try:
                sealed = json.loads(msg.data)
            except ValueError:
                sealed = None
            account = self.keys.take(sealed)
            if account is not None:
                log.info("worker %s: grants of %s taken (%d cameras)", self.worker_id, account,
                         len(self.keys.cameras()))
            self._grants_seq = seq
            if seq >= target:
                caught_up.set()

        await self.js.subscribe(self.names.grants_all(), cb=take, ordered_consumer=True,
                                deliver_policy=DeliverPolicy.ALL, stream=self.names.grants_stream)
        await asyncio.wait_for(caught_up.wait(), timeout)

    def _reload_service(self) -> None:
        try:
            mtime = os.stat(self.service_path).st_mtime_ns
        except OSError:
            return
        if mtime == self._service_mtime:
            return
        self._service_mtime = mtime
        try:
            fresh = Service.load(self.service_path)
        except Exception as exc:  # a file being written: the next look reads it
            log.warning("worker %s: service file not read (%s)", self.worker_id, type(exc).__name__)
            return
        if fresh.card() != self.service.card():
            log.error("worker %s: the service file holds another service key: restart the worker", self.worker_id)
            return
        now = fresh.accounts
        for account, card in self.service.accounts.items():
            if now.get(account) != card:
                self.service.leave(account)
        for card in now.values():
            if card.account not in self.service.accounts:
                self.service.enroll(card)
        changed = self.keys.enrolled(self.service.accounts)
        log.info("worker %s: service file reloaded, %d accounts enrolled%s", self.worker_id, len(now),
                 ", keys changed for %d" % len(changed) if changed else "")

    # -- partitions and leases ---------------------------------------------------------------------

    async def _heartbeat(self, msg: Any) -> None:
        try:
            data = json.loads(msg.data)
            worker = str(data["worker"])
        except (ValueError, KeyError, TypeError):
            return
        if self.coord is not None and worker != self.worker_id:
            self.coord.heard(worker, time.monotonic(), leaving=bool(data.get("leaving")))

    async def _beat(self, leaving: bool = False) -> None:
        try:
            await self.nc.publish(self.names.heartbeat, json.dumps({"worker": self.worker_id,
                                                                    "leaving": leaving}).encode())
        except Exception:
            pass

    async def _coordinate(self) -> None:
        coord = self.coord
        assert coord is not None
        tick = min(0.25, self.settings.lease_s / 12)
        last_reload = 0.0
        while not self._stopping:
            started = time.monotonic()
            await self._beat()
            held = set(coord.holding())
            reads = [p for p in range(self.partitions) if p not in held]
            results = await asyncio.gather(*(self._read_lease(p) for p in reads), return_exceptions=True)
            now = time.monotonic()
            actions: List[Any] = []
            for p, result in zip(reads, results):
                if not isinstance(result, BaseException):
                    actions += coord.observed(p, result[0], result[1], now)
            actions += coord.plan(now)
            await self._carry_out(actions)
            if started - last_reload > 2.0:
                last_reload = started
                self._reload_service()
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - started)))

    async def _read_lease(self, partition: int) -> Tuple[int, Optional[Lease]]:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.kv_lease.get(Names.lease_key(partition))
        except KeyNotFoundError as exc:
            entry = getattr(exc, "entry", None)
            return (entry.revision if entry is not None else 0), None
        return entry.revision, Lease.from_bytes(entry.value)

    async def _carry_out(self, actions: List[Any]) -> None:
        coord = self.coord
        assert coord is not None
        writes = [a for a in actions if isinstance(a, (Acquire, Renew, Release))]
        for action in actions:
            if isinstance(action, Start):
                self._start(action)
            elif isinstance(action, Stop):
                self._stop_run(action.partition, action.why)
        if writes:
            outcomes = await asyncio.gather(*(self._write_lease(w) for w in writes))
            follow: List[Any] = []
            for more in outcomes:
                follow += more
            if follow:
                await self._carry_out(follow)

    async def _write_lease(self, write: Write) -> List[Any]:
        from nats.js.errors import KeyWrongLastSequenceError

        coord = self.coord
        assert coord is not None
        began = time.monotonic()
        try:
            revision = await self.kv_lease.update(Names.lease_key(write.partition), write.lease.to_bytes(),
                                                  last=write.revision)
        except KeyWrongLastSequenceError:
            return coord.refused(write, time.monotonic())
        except Exception as exc:
            log.info("worker %s: lease write for partition %d unanswered (%s)", self.worker_id, write.partition,
                     type(exc).__name__)
            return coord.failed(write, time.monotonic())
        if isinstance(write, Acquire):
            log.info("worker %s: partition %d acquired (token %d, from %d)", self.worker_id, write.partition,
                     write.lease.token, write.lease.checkpoint + 1)
        elif isinstance(write, Release):
            log.info("worker %s: partition %d released at %d", self.worker_id, write.partition,
                     write.lease.checkpoint)
        return coord.succeeded(write, revision, began)

    def _start(self, start: Start) -> None:
        old = self.runs.get(start.partition)
        if old is not None:
            old.stop_why = old.stop_why or "restarted"
        run = _Run(start.partition, start.lease, Judge(self.keys))
        self.runs[start.partition] = run
        run.task = asyncio.ensure_future(self._judge_partition(run, old))

    def _stop_run(self, partition: int, why: str) -> None:
        run = self.runs.get(partition)
        if run is not None:
            run.stop_why = why
            log.info("worker %s: partition %d stops (%s)", self.worker_id, partition, why)
        elif why == "handoff" and self.coord is not None:
            self.coord.stopped(partition)

    # -- judging a partition -----------------------------------------------------------------------

    async def _consumer(self, run: _Run, start_seq: int) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        name = run.consumer = "%s-p%d-t%d" % (self.names.prefix, run.partition, run.lease.token)
        try:
            await self.js.delete_consumer(self.names.seg_stream, name)
        except NotFoundError:
            pass
        config = ConsumerConfig(durable_name=name, filter_subject=self.names.seg_filter(run.partition),
                                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start_seq),
                                ack_policy=AckPolicy.NONE, num_replicas=1, mem_storage=True,
                                inactive_threshold=60.0, max_waiting=16)
        await self.js.add_consumer(self.names.seg_stream, config)
        self.counts["consumers"] += 1
        return await self.js.pull_subscribe_bind(durable=name, stream=self.names.seg_stream)

    async def _judge_partition(self, run: _Run, previous: Optional[_Run]) -> None:
        if previous is not None and previous.task is not None:
            await asyncio.wait([previous.task])
        coord = self.coord
        assert coord is not None
        p = run.partition
        position = run.lease.checkpoint + 1
        sub = None
        idle = 0
        try:
            while not run.stop_why and not self._stopping:
                if not coord.may_write(p, time.monotonic()):
                    run.stop_why = "expired"
                    break
                if sub is None:
                    try:
                        sub = await self._consumer(run, position)
                    except Exception as exc:
                        log.info("worker %s: partition %d: no consumer yet (%s)", self.worker_id, p,
                                 type(exc).__name__)
                        await asyncio.sleep(0.5)
                        continue
                try:
                    msgs = await sub.fetch(self.settings.batch, timeout=0.5)
                except asyncio.TimeoutError:
                    idle += 1
                    if idle % 6 == 0 and not await self._consumer_alive(sub):
                        await self._drop(run, sub)
                        sub = None
                    continue
                except Exception as exc:
                    log.info("worker %s: partition %d: fetch failed (%s): a new consumer from %d", self.worker_id,
                             p, type(exc).__name__, position)
                    await self._drop(run, sub)
                    sub = None
                    await asyncio.sleep(0.2)
                    continue
                idle = 0
                batch = []
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq >= position:
                        batch.append((seq, msg.subject, msg.data))
                if not batch:
                    continue
                try:
                    await self._judge_batch(run, batch)
                except _Lost:
                    break
                position = batch[-1][0] + 1
                coord.progress(p, position - 1)
        finally:
            if sub is not None:
                await self._drop(run, sub, delete=True)
            self._finish(run)

    async def _consumer_alive(self, sub: Any) -> bool:
        try:
            await sub.consumer_info()
            return True
        except Exception:
            return False

    async def _drop(self, run: _Run, sub: Any, delete: bool = False) -> None:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
        if delete and run.consumer:
            try:
                await asyncio.wait_for(self.js.delete_consumer(self.names.seg_stream, run.consumer), 2.0)
            except Exception:
                pass  # a consumer left behind goes after its inactive threshold

    def _finish(self, run: _Run) -> None:
        for name, value in run.judge.counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        run.judge.counts = {k: 0 for k in run.judge.counts}
        if self.runs.get(run.partition) is run:
            del self.runs[run.partition]
            if run.stop_why == "handoff" and self.coord is not None:
                self.coord.stopped(run.partition)
            elif self.coord is not None and not self._stopping:
                # it stopped by itself (an expiry it saw first, a failure): a lease renewed with
                # nothing judging would hold the partition forever
                self.coord.abandoned(run.partition)
        log.info("worker %s: partition %d no longer judged here (%s)", self.worker_id, run.partition,
                 run.stop_why or "stopping")

    async def _judge_batch(self, run: _Run, batch: List[Tuple[int, str, bytes]]) -> None:
        coord = self.coord
        assert coord is not None
        judge = run.judge
        outcomes: List[Outcome] = []
        # the records of every stream the batch meets for the first time, read together (one
        # round trip each, in parallel, rather than one after the other as each is met)
        cameras = [self.names.camera_of(subject) for _, subject, _ in batch]
        wanted = judge.wanted([c for c in cameras if c is not None])
        if wanted:
            await self._load(run, wanted)
        for (seq, subject, data), camera in zip(batch, cameras):
            if camera is None:
                outcomes.append(Outcome(seq, "", "", Verdict(Reason.NO_GRANT, "not a camera's subject: %r"
                                                             % subject[:80])))
                continue
            while True:
                try:
                    outcomes.append(judge.judge(seq, camera, data))
                    break
                except NeedState as need:
                    await self._load(run, need.streams)
        self.counts["batches"] += 1
        self.faults.point("judged")
        # 2. the recording, then the verdicts, durable before any state moves
        if self.recording is not None:
            for outcome in outcomes:
                if outcome.verdict.accepted and not outcome.skipped:
                    self.recording.write(outcome)
                    self.counts["recorded"] += 1
        pending = [o for o in outcomes if not o.skipped]
        while pending:
            self._check(run)
            futures = []
            for outcome in pending:
                subject = (self.names.verdict_subject(outcome.account, outcome.camera) if outcome.account
                           else self.names.refused_subject(outcome.camera or "?"))
                futures.append(await self.acks.publish(subject, verdict_json(outcome, self.worker_id)))
            results = await Acks.settle(futures, 5.0)
            failed = [o for o, r in zip(pending, results) if not isinstance(r, int)]
            self.counts["verdicts"] += len(pending) - len(failed)
            if failed:
                self.counts["verdict_retries"] += len(failed)
                await asyncio.sleep(0.2)
            pending = failed
        self.faults.point("verdicts")
        # 3. the stream records, compare-and-set on the revision read
        writes = judge.dirty()
        while writes:
            self._check(run)
            self.faults.point("states_sending")
            futures = []
            for account, camera, record, revision in writes:
                futures.append(await self.acks.publish(
                    "$KV.%s.%s" % (self.names.state_bucket, Names.state_key(account, camera)), record,
                    {EXPECTED_LAST_SUBJECT_SEQ: str(revision)}))
            results = await Acks.settle(futures, 5.0)
            retry = []
            for (account, camera, record, revision), result in zip(writes, results):
                if isinstance(result, int):
                    judge.written(account, camera, result)
                    self.counts["state_writes"] += 1
                elif isinstance(result, PubError) and result.err_code == WRONG_LAST_SEQUENCE:
                    landed = await self._landed(account, camera, record)
                    if landed is None:
                        self._refused(run, account, camera)
                    else:
                        judge.written(account, camera, landed)
                else:
                    retry.append((account, camera, record, revision))
            if retry:
                await asyncio.sleep(0.2)
                # a write without an answer may have landed: what the bucket holds says
                still = []
                for account, camera, record, revision in retry:
                    landed = await self._landed(account, camera, record, revision)
                    if landed is not None and landed != revision:
                        judge.written(account, camera, landed)
                        self.counts["state_writes"] += 1
                    elif landed == revision:
                        still.append((account, camera, record, revision))
                    else:
                        self._refused(run, account, camera)
                retry = still
            writes = retry
        self.faults.point("states")

    def _check(self, run: _Run) -> None:
        """Stop before writing when the lease is no longer valid here (a partition being handed
        over finishes its batch in flight)."""
        assert self.coord is not None
        if run.stop_why in ("lost", "expired") or not self.coord.may_write(run.partition, time.monotonic()):
            run.stop_why = run.stop_why or "expired"
            raise _Lost()

    def _refused(self, run: _Run, account: str, camera: str) -> None:
        assert self.coord is not None
        self.counts["state_refused"] += 1
        log.warning("worker %s: the record of %s/%s moved under this worker: partition %d is another's",
                    self.worker_id, token(account), token(camera), run.partition)
        self._apply(self.coord.lost(run.partition))
        run.stop_why = run.stop_why or "lost"
        raise _Lost()

    def _apply(self, actions: List[Any]) -> None:
        for action in actions:
            if isinstance(action, Stop):
                self._stop_run(action.partition, action.why)

    async def _landed(self, account: str, camera: str, record: bytes, expected: Optional[int] = None
                      ) -> Optional[int]:
        """After an unanswered or refused write: the revision at which ``record`` is in the bucket;
        ``expected`` again when the bucket still holds the revision the write expected (it did not
        land); None when someone else's write is there."""
        from nats.js.errors import KeyNotFoundError

        while True:
            try:
                entry = await self.kv_state.get(Names.state_key(account, camera))
                revision, value = entry.revision, entry.value
                break
            except KeyNotFoundError:
                revision, value = 0, None
                break
            except Exception:
                await asyncio.sleep(0.2)
        if value == record:
            return int(revision)
        if expected is not None and revision == expected:
            return expected
        return None

    async def _load(self, run: _Run, streams: List[Tuple[str, str]]) -> None:
        from nats.js.errors import KeyNotFoundError

        async def read(account: str, camera: str) -> Tuple[Optional[bytes], int]:
            while True:
                self._check(run)
                try:
                    entry = await self.kv_state.get(Names.state_key(account, camera))
                    return entry.value, int(entry.revision)
                except KeyNotFoundError:
                    return None, 0
                except Exception as exc:
                    log.info("worker %s: record of %s unreadable now (%s)", self.worker_id, token(camera),
                             type(exc).__name__)
                    await asyncio.sleep(0.2)

        records = await asyncio.gather(*(read(a, c) for a, c in streams))
        for (account, camera), (record, revision) in zip(streams, records):
            run.judge.load(account, camera, record, revision)

    # -- the end -----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Stop judging, hand every partition back (released with its checkpoint: another worker
        takes it at once), say goodbye."""
        coord = self.coord
        runs = list(self.runs.values())
        for run in runs:
            run.stop_why = run.stop_why or "handoff"
        tasks = [r.task for r in runs if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        if coord is not None and self.nc is not None and self.nc.is_connected:
            releases = coord.release_all(time.monotonic())
            await asyncio.gather(*(self._write_lease(r) for r in releases), return_exceptions=True)
            await self._beat(leaving=True)
        if self.nc is not None:
            try:
                await self.nc.drain()
            except Exception:
                pass

    def stats(self) -> Dict[str, Any]:
        counts = dict(self.counts)
        for run in self.runs.values():
            for name, value in run.judge.counts.items():
                counts[name] = counts.get(name, 0) + value
        out: Dict[str, Any] = {"worker": self.worker_id, "pid": os.getpid(), "counts": counts,
                               "partitions": sorted(self.runs),
                               "streams": sum(len(r.judge) for r in self.runs.values())}
        if self.coord is not None:
            out["leases"] = dict(self.coord.counts)
        out["keys"] = dict(self.keys.counts, cameras=len(self.keys.cameras()))
        return out

    def _write_stats(self) -> None:
        path = self.settings.stats_path
        if not path:
            return
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.stats(), f, sort_keys=True)
        os.replace(tmp, path)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                self._write_stats()
            except OSError:
                pass


def serve(settings: Settings) -> None:
    """Run a worker until SIGTERM or SIGINT (then it hands its partitions back)."""
    asyncio.run(Worker(settings).run())
