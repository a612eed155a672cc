# syntax=docker/dockerfile:1
# streamal's image: `streamal` is the entrypoint, so `docker run IMAGE serve|train|annotate ...`.
#
#   docker build -t streamal .                                  # CPU (default)
#   docker build -t streamal:cuda --build-arg VARIANT=cuda .    # CUDA 12 (run with --gpus all)
#
# Two stages: `build` installs torch (from the PyTorch index of the variant) and streamal into
# a virtual environment; the final stage copies only that environment onto the same base and
# runs as an unprivileged user (uid 10001). The configs/ files land in /etc/streamal/, and
# STREAMAL_CONFIG points at the Kafka one; every field can still be set with STREAMAL_* env.
# The working directory /var/lib/streamal holds the stores unless configured elsewhere; its
# models/ and labels/ folders are where docker-compose.yml and deploy/ mount their volumes.

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-base-ubuntu24.04

# -- bases: pick one with --build-arg VARIANT=cpu|cuda ----------------------------------------
FROM ${PYTHON_IMAGE} AS base-cpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

FROM ${CUDA_IMAGE} AS base-cuda
# Ubuntu 24.04's Python 3.12; the CUDA libraries torch needs come with its wheels, the driver
# from the host (NVIDIA Container Toolkit).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# -- build: a virtual environment with torch and streamal ---------------------------------------
FROM base AS build
RUN python3 -m venv /opt/streamal
ENV PATH=/opt/streamal/bin:$PATH
# torch first, in a layer of its own: it is big and changes far less often than streamal.
ARG TORCH_VERSION=">=2.2"
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamal ./streamal
RUN pip install . && streamal --version

# -- runtime ----------------------------------------------------------------------------------
FROM base AS runtime
LABEL org.opencontainers.image.title="streamal" \
      org.opencontainers.image.description="Stream active learning: serve, train, annotate" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 streamal \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/streamal \
       --shell /usr/sbin/nologin streamal \
    && mkdir -p /var/lib/streamal/models /var/lib/streamal/labels \
    && chown -R 10001:10001 /var/lib/streamal
COPY --from=build /opt/streamal /opt/streamal
COPY configs/ /etc/streamal/
ENV PATH=/opt/streamal/bin:$PATH \
    HOME=/var/lib/streamal \
    STREAMAL_CONFIG=/etc/streamal/kafka.yaml
WORKDIR /var/lib/streamal
USER 10001:10001
# serve.metrics_address and train.metrics_address: /metrics, /healthz, /readyz
EXPOSE 9400 9401
ENTRYPOINT ["streamal"]
CMD ["--help"]
