"""The MQTT topic scheme (docs/AGENT.md): every topic name segbind uses, defined here once.

Camera and account ids become topic levels, so an id with "/", "+", "#" or
NUL cannot be used.
"""

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Optional
except ImportError:
    pass

TOPIC_PREFIX = "segbind/v2"

# Leaves under <prefix>/cam/<camera>/
SEG = "seg"                # camera -> cloud: tagged Annex-B segments, QoS 1
STATUS = "status"          # camera -> all: retained JSON status and health (and the will)
EVENT = "event"            # camera -> cloud: JSON events (gaps, refused commands), QoS 1
CTL = "ctl"                # cloud -> camera: commands, QoS 1, never retained
CTL_RESULT = "ctl/result"  # camera -> cloud: results, QoS 1
STILL = "still"            # camera -> cloud: an event's thumbnail, a tagged still (FORMAT.md 10), QoS 1
CAMERA_LEAVES = (SEG, STATUS, EVENT, CTL, CTL_RESULT, STILL)

# Leaves under <prefix>/acct/<account>/
REQUESTS = "req"           # owner's app -> cloud: JSON requests (routing, commands to forward, grants)
RESULTS = "results"        # cloud -> owner's app: its cameras' results, as the cameras sent them
OFFERS = "offers"          # cloud -> owner's app: share offers sealed to it, retained per contact (/<from>)
RECEIPTS = "rx"            # display -> cloud: a player's receipts (the simulated quality relay)
# SEG: cloud -> the account's displays, the cameras' segments unchanged

# Leaves under <prefix>/disp/<display>/
GRANTS = "grants"          # cloud -> display: its owner's sealed grants, retained (opaque to the cloud)


def check_topic_id(name: str, what: str = "id") -> str:
    """``name`` when it can be one MQTT topic level; else ValueError."""
    if not name or "/" in name or "+" in name or "#" in name or "\x00" in name:
        raise ValueError("%s %r cannot be used in an MQTT topic" % (what, name))
    return name


def camera_topic(camera: str, leaf: str, prefix: str = TOPIC_PREFIX) -> str:
    return "%s/cam/%s/%s" % (prefix, check_topic_id(camera, "camera"), leaf)


def account_topic(account: str, leaf: str, prefix: str = TOPIC_PREFIX) -> str:
    return "%s/acct/%s/%s" % (prefix, check_topic_id(account, "account"), leaf)


def display_topic(display: str, leaf: str, prefix: str = TOPIC_PREFIX) -> str:
    return "%s/disp/%s/%s" % (prefix, check_topic_id(display, "display"), leaf)


def every_camera(leaf: str, prefix: str = TOPIC_PREFIX) -> str:
    """The subscription pattern for ``leaf`` of every camera."""
    return "%s/cam/+/%s" % (prefix, leaf)


def every_account(leaf: str, prefix: str = TOPIC_PREFIX) -> str:
    """The subscription pattern for ``leaf`` of every account."""
    return "%s/acct/+/%s" % (prefix, leaf)


def id_of_topic(topic: str, prefix: str = TOPIC_PREFIX) -> Optional[str]:
    """The camera, account or display id of a ``<prefix>/cam|acct|disp/<id>/<leaf>`` topic, or None."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/")
    if len(parts) < 3 or parts[0] not in ("cam", "acct", "disp"):
        return None
    return parts[1]
