"""The weak-network model: seeded, deterministic, and doing what each knob says."""

from __future__ import annotations

from host_sim.netem import Clock, Link, LinkProfile


def arrivals(profile: LinkProfile, seed: int, count: int = 2000, spacing_ms: float = 40.0,
             hold: bool = True):
    clock, link, got = Clock(), Link(profile, seed, hold_during_outage=hold), []
    for i in range(count):
        clock.at(i * spacing_ms, clock.send, link, got.append, i)
    clock.run()
    return got, link.stats


def test_same_seed_same_deliveries_other_seed_other_deliveries() -> None:
    weak = LinkProfile.weak()
    assert arrivals(weak, 7)[0] == arrivals(weak, 7)[0]
    assert arrivals(weak, 7)[0] != arrivals(weak, 8)[0]


def test_a_perfect_link_delivers_everything_once_in_order() -> None:
    got, stats = arrivals(LinkProfile(delay_ms=50), 1)
    assert got == list(range(2000)) and stats.lost == stats.duplicated == 0


def test_loss_duplication_and_reordering_happen_at_their_rates() -> None:
    got, stats = arrivals(LinkProfile(loss=0.1, duplicate=0.05, reorder=0.05, reorder_ms=500), 3)
    assert 150 < stats.lost < 250 and 50 < stats.duplicated < 150 and 50 < stats.reordered < 150
    assert len(got) == 2000 - stats.lost + stats.duplicated
    assert got != sorted(got)                      # some messages overtaken
    assert len(set(got)) == 2000 - stats.lost      # duplicates are copies, not new messages


def test_jitter_alone_reorders_closely_spaced_messages() -> None:
    got, _ = arrivals(LinkProfile(delay_ms=100, jitter_ms=200), 5)
    assert sorted(got) == list(range(2000)) and got != list(range(2000))


def test_outages_hold_messages_until_the_link_is_back_or_lose_them() -> None:
    flapping = LinkProfile(outage_every_ms=5_000, outage_ms=2_000)
    held, stats = arrivals(flapping, 9)
    assert stats.held_by_outage > 100 and held == list(range(2000))   # a spool: late, not lost
    lost, stats = arrivals(flapping, 9, hold=False)
    assert stats.lost == stats.sent - len(lost) > 100                 # no spool: gone


def test_clock_runs_events_in_time_order_and_stops_where_told() -> None:
    clock, seen = Clock(), []
    for t in (30, 10, 20, 10):
        clock.at(t, seen.append, t)
    clock.run(until_ms=20)
    assert seen == [10, 10, 20] and clock.now_ms == 20 and len(clock) == 1
