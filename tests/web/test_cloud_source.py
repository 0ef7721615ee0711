"""The reference cloud as the HTTP front end's source (host_sim.web.LiveSource): what it keeps
of each camera (bounded), which stream it serves as the recording, and to whom it serves
them (its routing and its second line, as for what it relays). Cameras run the agent core
on simulated time, paired by their owners' apps (host_sim.households)."""

from __future__ import annotations

import time
from typing import Any, List, Optional

from host_sim.cloud import CloudFaults, peek_tag
from host_sim.households import RECENT, RECORDING, Household, Households
from host_sim.netem import Clock
from host_sim.web import Published
from segbind.grants import Display as DisplayIdentity
from segbind_core import topics


def run(seconds: int, recording: int = RECORDING, recording_max: Optional[int] = None,
        **cloud: Any) -> Households:
    clock = Clock()
    world = Households(clock, base_ms=int(time.time() * 1000) - 1000 * seconds, recording=recording, **cloud)
    if recording_max is not None:
        world.cloud.recording_max = recording_max
    world.start()
    clock.run(1000 * seconds)
    return world


def fields(items: List[Published]) -> List[Any]:
    return [peek_tag(p.data) for p in items]


def camera_of(world: Households, household: Household, key_id: bytes) -> str:
    """The camera a key id names in its owner's keys (the cloud cannot tell: the tag names no one)."""
    ring = household.app.owner.keyring(world.base_ms - 3_600_000, world.base_ms + 3_600_000)
    return ring.binding(key_id).camera


def test_recent_segments_are_bounded_and_numbered_by_the_cloud() -> None:
    world = run(RECORDING + RECENT + 10)
    for household in (world.alice, world.eve):
        for cam in household.cameras:
            kept = world.cloud.segments(household.name, cam.name)
            received = cam.tagged  # every segment the camera tagged reached the cloud (a perfect link)
            assert received == RECORDING + RECENT + 10
            assert [p.number for p in kept] == list(range(received - RECENT, received))
            # the tags name no camera (FORMAT.md 5): their key ids are this camera's, as its owner knows them
            ring = household.app.owner.keyring(world.base_ms, world.base_ms + 1000 * (RECORDING + RECENT + 20))
            bindings = [ring.binding_or_none(bytes(f.key_id)) if f is not None else None for f in fields(kept)]
            assert all(b is not None and (b.owner, b.camera) == (household.name, cam.name) for b in bindings)
            assert not hasattr(kept[0], "owner") and not any(hasattr(f, "owner") for f in fields(kept))


def test_the_recording_is_the_last_finished_stream_as_received() -> None:
    world = run(RECORDING + 8)
    cloud, camera = world.cloud, "alice-front"
    recording = cloud.recording("alice", camera)
    tags = fields(recording)
    assert [t.seq for t in tags] == list(range(RECORDING)) and len({t.stream_id for t in tags}) == 1
    assert [t.end_of_stream for t in tags] == [False] * (RECORDING - 1) + [True]
    live = fields(cloud.segments("alice", camera))[RECORDING:]
    assert live and all(t.stream_id > tags[0].stream_id and not t.end_of_stream for t in live)
    # A redelivered segment (QoS 1) is kept among the recent ones, not twice in the recording.
    again = world.bus.transport("uplink").start()
    again.publish(topics.camera_topic(camera, topics.SEG), recording[-1].data)
    assert cloud.segments("alice", camera)[-1].data == recording[-1].data
    assert [p.data for p in cloud.recording("alice", camera)] == [p.data for p in recording]


def test_a_stream_too_long_to_keep_whole_is_not_served_as_a_recording() -> None:
    world = run(RECORDING + 4, recording_max=RECORDING - 1)
    assert all(world.cloud.recording("alice", cam.name) == [] for cam in world.alice.cameras)
    assert len(world.cloud.segments("alice", "alice-front")) == RECORDING + 4


def test_an_account_is_served_what_the_cloud_would_relay_to_it() -> None:
    world = run(RECORDING + 4)
    cloud, alice, eve = world.cloud, world.alice, world.eve
    assert cloud.accounts() == ["alice", "eve"]
    assert cloud.cameras("alice") == [c.name for c in alice.cameras]
    assert cloud.cameras("eve") == [c.name for c in eve.cameras]
    stranger = eve.cameras[0].name
    assert cloud.segments("alice", stranger) == [] and cloud.recording("alice", stranger) == []
    # A camera reset by its button is routed to nobody: its owner is served none of it any more.
    alice.cameras[1].press_reset()
    assert cloud.cameras("alice") == [alice.cameras[0].name]
    assert cloud.segments("alice", alice.cameras[1].name) == []


def test_a_leak_is_served_only_when_the_second_line_is_off() -> None:
    for second_line in (True, False):
        world = run(RECORDING + 4, faults=CloudFaults(leak_to=("alice",)), second_line=second_line)
        stranger = world.eve.cameras[0].name
        assert stranger in world.cloud.cameras("alice")  # the leak is in the routing
        served = world.cloud.segments("alice", stranger)
        if second_line:  # the tags say eve's camera: refused, as when relaying
            assert served == []
        else:
            assert [p.data for p in served] == [p.data for p in world.cloud.segments("eve", stranger)]


def test_the_cloud_stores_grants_only_from_the_displays_account_unless_at_fault() -> None:
    for unchecked in (False, True):
        world = run(1, recording=0, faults=CloudFaults(displays_unchecked=unchecked))
        screen = DisplayIdentity.new("alice-tv", test_only=True).card()
        world.alice.app.enroll_card(screen)
        world.alice.app.push_grants()
        assert (world.cloud.sealed_grants("alice-tv") or {}).get("from") == "alice"
        world.eve.app.enroll_card(screen)  # eve read the card off the screen
        world.eve.app.push_grants()
        stored = (world.cloud.sealed_grants("alice-tv") or {}).get("from")
        assert stored == ("eve" if unchecked else "alice")
        assert world.cloud.requests["grants:not the account's display"] == (0 if unchecked else 1)


def test_a_segment_carried_as_another_cameras_is_refused_by_its_key_id() -> None:
    """The second line without names: a key id first seen on one camera's uplink is never another's.
    A buggy path that hands one camera's segment out as another's (the 2020 cache's refill) is
    refused, though the account is one the cloud routes both to; with the second line off it goes."""
    world = run(RECORDING + 4)
    cloud, alice = world.cloud, world.alice
    front, garden = (c.name for c in alice.cameras)
    garden_segment = cloud.segments("alice", garden)[-1].data
    assert cloud.deliver("alice", front, garden_segment, "quality-cache") is False
    assert cloud.refused["second_line:quality-cache:key_id_of_another_camera"] == 1
    assert cloud.deliver("alice", garden, garden_segment, "quality-cache") is True
    cloud.second_line = False
    assert cloud.deliver("alice", front, garden_segment, "quality-cache") is True


def test_stills_go_where_their_cameras_video_goes_and_nowhere_else() -> None:
    """The cameras make their thumbnails (an event every tenth segment); the cloud routes them like
    video, to the camera's audience, and makes none of its own."""
    world = run(1, recording=0)
    got: dict = {"alice": [], "eve": []}
    spy = world.bus.transport("spy").start()
    for account in got:
        spy.subscribe(topics.account_topic(account, topics.STILL), lambda m, a=account: got[a].append(m))
    clock, before = world.scheduler, world.cloud.stills["delivered"]
    clock.run(clock.now_ms + 25_000)
    assert world.cloud.stills["delivered"] - before == len(got["alice"]) + len(got["eve"]) >= 4
    for household in (world.alice, world.eve):
        for msg in got[household.name]:
            f = peek_tag(msg.payload)
            assert f is not None and f.still
            assert camera_of(world, household, f.key_id) in {c.name for c in household.cameras}
            assert msg.user_properties["camera"] == camera_of(world, household, f.key_id)
