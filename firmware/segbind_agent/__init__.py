"""segbind camera agent: reads the encoder's H.264, tags every segment, publishes it over MQTT.

Runs on a camera's minimal CPython (the standard library plus paho-mqtt); the
per-segment work is in ``segbind_core``, the same pure code MicroPython runs.
It never imports the ``segbind`` verifier library. See docs/AGENT.md.

    python3 -m segbind_agent --config /etc/segbind/agent.json
"""

from segbind_core import __version__

__all__ = ["__version__"]
