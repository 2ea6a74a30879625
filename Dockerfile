# syntax=docker/dockerfile:1
# Warmstart GPU image: PaddlePaddle 2.6.2 built for CUDA 11.8 / cuDNN 8, the pinned requirement files that
# `make install` and CI use, a non-root user, tini as PID 1 and the top-level `entrypoint`.
#
#   docker build -t warmstart:2.6.2-cu118 .
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> \
#                --build-arg CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04@sha256:<digest> .
#
# Why not an official Paddle image: PaddlePaddle 2.6 GPU images are published for CUDA 11.2, 11.7 and 12.0;
# CUDA 11.8 exists only as a development image (latest-dev-cuda11.8-cudnn8.6-trt8.5-gcc82: compilers,
# TensorRT, an unpinned `latest-dev` tag). Why not `FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04`
# directly: its Python is 3.10, and the lock (requirements/constraints.txt, a freeze on Python 3.11)
# holds packages that need Python >= 3.11 (soupsieve needs >= 3.11.5), so Ubuntu 22.04's python3.11
# (3.11.0) cannot install it either. So: the official Python 3.11 image, plus the CUDA 11.8 runtime,
# cuDNN 8 and NCCL libraries copied from NVIDIA's runtime image (they are built for old glibc and run on
# Debian 12 as they do in NVIDIA's own pip wheels), plus the CUDA 11.8 build of paddlepaddle-gpu from
# Paddle's package index (the PyPI paddlepaddle-gpu 2.6.2 wheel is the CUDA 12.0 build).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04

FROM ${CUDA_IMAGE} AS cuda

FROM ${PYTHON_IMAGE} AS runtime

# Paddle's CUDA 11.8 wheels; same version as `paddlepaddle==` in requirements/base.txt (a test checks).
ARG PADDLE_GPU_VERSION=2.6.2
ARG PADDLE_INDEX_URL=https://www.paddlepaddle.org.cn/packages/stable/cu118/

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# System packages, rarely changing: tini (PID 1 that forwards SIGTERM and reaps zombies), the DejaVu fonts
# the OCR task renders with, libgomp (Paddle), libGL/GLib (opencv-python).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini fonts-dejavu-core libgomp1 libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# CUDA 11.8 runtime libraries, cuDNN 8 and NCCL 2 from NVIDIA's runtime image. Only real files are
# copied (`*.so.N.M*`); ldconfig recreates the soname links, and the unversioned names Paddle dlopens
# (libcudnn.so, libcublas.so, ...) are linked by hand because only the -dev packages ship them.
COPY --from=cuda /usr/local/cuda-11.8/targets/x86_64-linux/lib/ /usr/local/cuda/lib64/
COPY --from=cuda /usr/lib/x86_64-linux-gnu/libcudnn*.so.8.* /usr/lib/x86_64-linux-gnu/libnccl.so.2.* /usr/local/cuda/lib64/
WORKDIR /usr/local/cuda/lib64
RUN echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda-11-8.conf \
    && ldconfig \
    && for so in libcudart.so.11.0 libcublas.so.11 libcublasLt.so.11 libcufft.so.10 libcurand.so.10 \
                 libcusolver.so.11 libcusparse.so.11 libnvrtc.so.11.2 libcudnn.so.8 libnccl.so.2; do \
           test -e "$so" || { echo "missing $so: is CUDA_IMAGE a CUDA 11.8 cuDNN 8 runtime image?" >&2; exit 1; }; \
           ln -sf "$so" "${so%%.so.*}.so"; \
       done \
    && ldconfig
# What the NVIDIA container toolkit reads to mount the driver (the nvidia/cuda images set the same).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=11.8" \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64

# The runtime user: numeric so Kubernetes `runAsNonRoot` can verify it.
RUN groupadd --gid 10001 warmstart \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/warmstart --shell /usr/sbin/nologin warmstart

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Python dependencies: the same pin files as `make install` (requirements/base.txt, tasks.txt and the
# constraints lock; dev.txt's test tools are left out), with the CUDA 11.8 paddlepaddle-gpu wheel in place
# of CPU paddlepaddle. The GPU wheel is downloaded alone from Paddle's index (PyPI has a different build
# under the same version), then installed from the file, so the other packages still come from PyPI under
# the lock. Only requirements/ is copied first: code edits do not invalidate this layer.
WORKDIR /tmp/build
COPY requirements/ requirements/
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install pip==24.3.1 \
    && grep -v '^paddlepaddle==' requirements/base.txt > base-gpu.txt \
    && pip download --no-deps --index-url "$PADDLE_INDEX_URL" --dest wheels "paddlepaddle-gpu==${PADDLE_GPU_VERSION}" \
    && pip install wheels/paddlepaddle_gpu-*.whl -r base-gpu.txt -r requirements/tasks.txt -c requirements/constraints.txt \
    && grep -E '^(setuptools|wheel)==' requirements/dev.txt > build.txt \
    && pip install -r build.txt \
    && pip check \
    && python -c "import zlib, paddle; assert paddle.is_compiled_with_cuda(); assert paddle.version.cuda() == '11.8', paddle.version.cuda()" \
    && rm -rf /tmp/build

# The application, last: it changes most often.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app/ app/
COPY configs/ configs/
COPY --chmod=755 entrypoint /app/entrypoint
RUN pip install --no-deps --no-build-isolation . \
    && mkdir -p /app/runs \
    && chown warmstart:warmstart /app/runs

USER 10001:10001
ENV HOME=/home/warmstart \
    WARMSTART_CONFIG=/app/configs/demo.yaml

# tini is PID 1 and forwards SIGTERM/SIGINT to the entrypoint's process, which `exec`s warmstart: the
# trainer finishes the step, saves, uploads and exits 143. STOPSIGNAL is SIGTERM (the default).
ENTRYPOINT ["/usr/bin/tini", "--", "/app/entrypoint"]
