"""Every number of a fleet's run, from its parties' counters and the ledger's ground truth
(docs/FLEET.md defines each one)."""

from __future__ import annotations

import collections
from typing import Any, Dict


def _sum_counters(counters) -> Dict[str, int]:
    return dict(sorted(sum(counters, collections.Counter()).items()))


def results(fleet: Any) -> dict:
    displays = fleet.displays
    total = lambda attr, kind: sum(getattr(d, attr)[kind] for d in displays)  # noqa: E731
    own_delivered = sum(len(d.own_delivered) for d in displays)
    own_accepted = sum(len(d.own_accepted) for d in displays)
    own_produced = sum(len(fleet.ledger.produced_for[d.account]) for d in displays)
    # Own segments a display refused for want of a grant it should hold (its grants were lost
    # on the way): the grants path failed, not verification.
    no_grant = {(d.account, p) for d in displays for p in d.own_refused_no_grant} - \
        {(d.account, p) for d in displays for p in d.own_accepted}
    # Own segments a forger's own display refused because its own forgery took their place: the
    # forger fooled itself (its own slot's key), nobody else.
    self_inflicted = {(d.account, p) for d in displays for p in d.own_refused_after_forging} - \
        {(d.account, p) for d in displays for p in d.own_accepted} - no_grant
    forged_made = sum(f.forged for f in fleet.forgers)
    forged_by_self = sum(d.forged_own_slot for d in displays)
    on = {
        "foreign_shown": total("accepted", "foreign"),
        "forged_shown": total("accepted", "forged") - forged_by_self,
        "own_accepted": own_accepted,
        "own_refused": _sum_counters(d.refused_own for d in displays),
        "refused": _sum_counters(d.refused_other for d in displays),
    }
    off = {
        "foreign_shown": total("delivered", "foreign"),
        "forged_shown": total("delivered", "forged"),
        "own_delivered": own_delivered,
    }
    stranger = {
        "readable": sum(d.readable for d in displays),
        "thumbnails": total("stills_delivered", "foreign"),
        "thumbnails_shown": total("stills_shown", "foreign"),
        "thumbnails_readable": sum(d.stills_readable for d in displays),
        "decoded": fleet.eye.decoded if fleet.eye is not None else 0,
    }
    apps = fleet.owners.values()
    rotations = {
        "dropped_by_cloud": fleet.cloud.dropped_commands,
        "retries": sum(a.retries for a in apps),
        "alarms": sum(a.alarms_raised for a in apps),
        "flagged_superseded": sum(d.flagged_total for d in displays),
        "revoked": len(fleet.revocations),
    }
    accounts = []
    for d, acct in zip(displays, fleet.plan.accounts):
        accounts.append({
            "account": d.account, "cameras": sorted(acct.cameras), "shared_in": sorted(acct.shared_in),
            "downlink": "weak" if acct.weak else "good",
            "delivered": dict(d.delivered), "accepted": dict(d.accepted),
            "own_delivered": len(d.own_delivered), "own_accepted": len(d.own_accepted),
            "refused": dict(sorted(d.refused_other.items())), "own_refused": dict(sorted(d.refused_own.items())),
            "grant_refusals": dict(d.grant_refusals), "alarms": len(d.alarms()),
            "stills": dict(d.stills_delivered), "stills_shown": dict(d.stills_shown),
        })

    def link_totals(kind: str) -> dict:
        out = {}
        for weak in (False, True):
            stats = [link.stats for w, link in fleet.links[kind] if w == weak]
            out["weak" if weak else "good"] = {
                "links": len(stats),
                **{k: sum(getattr(s, k) for s in stats)
                   for k in ("sent", "lost", "duplicated", "reordered", "held_by_outage")}}
        return out

    cams = fleet.cameras
    cloud = fleet.cloud
    return {
        "segbind_fleet": 3,
        "config": fleet.cfg.as_dict(),
        "fleet": {"cameras": len(cams), "accounts": len(displays), "shares": fleet.plan.shares,
                  "h265_cameras": sum(1 for c in fleet.plan.cameras if c.codec == 2),
                  "resold": sum(1 for c in fleet.plan.cameras if c.buyer),
                  "forgers": len(fleet.forgers),
                  "revoked": sum(1 for c in fleet.plan.cameras if c.revoked),
                  "colliding": sum(1 for c in fleet.plan.cameras if c.colliding),
                  "weak_uplinks": sum(c.weak for c in fleet.plan.cameras),
                  "weak_downlinks": sum(a.weak for a in fleet.plan.accounts),
                  "cache_slots": fleet.cache.slots},
        "results": {
            "sent": sum(c.produced for c in cams),
            "stills_made": sum(c.stills for c in cams),
            "forged_made": forged_made,
            "spool_dropped": sum(c.spool_dropped + c.core.spool.dropped_total for c in cams),
            "spool_max": max((c.spool_max for c in cams), default=0),
            "cameras_halted": sum(1 for c in cams if c.halted),
            "at_cloud": cloud.received,
            "relayed": cloud.delivered_by_source["live"],
            "refilled": cloud.delivered_by_source["quality-cache"],
            "delivered": sum(sum(d.delivered.values()) for d in displays),
            "cloud": {"delivered": sum(cloud.delivered.values()), "refused": dict(cloud.refused),
                      "stills": dict(cloud.stills), "requests": dict(cloud.requests), "restarts": cloud.restarts},
            "thumbnails": _sum_counters(d.stills_delivered for d in displays),
            "relay": fleet.relay.stats.as_dict(),
            "grant_refusals": _sum_counters(collections.Counter(d.grant_refusals) for d in displays),
            "owner_resyncs": sum(a.resyncs for a in apps),
            "refused_shares": _sum_counters(collections.Counter(a.refused_offers) for a in apps),
            "on": on,
            "off": off,
            "stranger": stranger,
            "other_owners_tile": sum(d.other_owners_tile for d in displays),
            "revoked_late": sum(d.revoked_late for d in displays),
            "rotations": rotations,
            "own_produced": own_produced,
            "own_never_delivered": own_produced - own_delivered,
            "own_without_grant": len(no_grant),
            "own_lost_to_own_forgery": len(self_inflicted),
            "own_lost_to_verification": own_delivered - own_accepted - len(no_grant) - len(self_inflicted),
            "links": {k: link_totals(k) for k in fleet.links},
            "incomplete": fleet.incomplete,
        },
        "accounts": accounts,
        "performance": performance(fleet),
    }


def performance(fleet: Any) -> dict:
    verified = fleet.verified()
    verify_cpu = sum(d.verify_cpu_s for d in fleet.displays)
    return {
        "transport": fleet.cfg.engine_name,
        "clips_setup_s": round(fleet.setup_s, 3),
        "wall_s": round(fleet.wall_s, 3),
        "cpu_s": round(fleet.cpu_s, 3),
        "simulated_s": round(fleet.sim_ms / 1000.0, 3),
        "segments_verified": verified,
        "verified_per_s": round(verified / fleet.wall_s, 1) if fleet.wall_s else None,
        "verifier_cpu_s": round(verify_cpu, 3),
        "verifier_segments_per_cpu_s": round(verified / verify_cpu, 1) if verify_cpu else None,
        "verifier_cpu_share": round(verify_cpu / fleet.cpu_s, 4) if fleet.cpu_s else None,
        "segments_tagged": sum(c.produced for c in fleet.cameras),
    }
