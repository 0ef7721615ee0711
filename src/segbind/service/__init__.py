"""segbind's verifying service: workers that verify and decrypt the segments of every camera
whose owner granted the service, at scale, on NATS JetStream (docs/SERVICE.md).

- ``names``: the subjects, streams, KV buckets and keys; a camera's partition.
- ``lease``: which worker judges which partition (sans-I/O: leases with compare-and-set).
- ``judge``: a partition's segments judged in order, the verifier state per (owner, camera) as
  bytes for the KV bucket (sans-I/O).
- ``keys``: the service's keys, from its owners' sealed grants (segbind.grants.ServiceGrants).
- ``worker``, ``bridge``, ``admin``: the edges on NATS (nats-py) and MQTT (paho-mqtt):
  ``segbind serve worker|bridge|init|grant``.
"""
