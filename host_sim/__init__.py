"""Host-side simulation: real H.264 clips, cameras, a cloud relay and displays."""
