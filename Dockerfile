# augforge on a CUDA runtime: GPU-batched ops in Dask workers or the CLI.
#   docker build -t augforge .
#   docker run --gpus all -v $PWD/data:/data augforge generate /data/recipe.yaml --out /data/out
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    PYTHONUNBUFFERED=1

# Python 3.12 from Ubuntu; libusb for open3d, libgl/libglib for OpenCV-based helpers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip libusb-1.0-0 libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/augforge
ENV PATH=/opt/augforge/bin:$PATH

# torch with CUDA 12.8 wheels first, so the package install does not pick another build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128

WORKDIR /src
COPY pyproject.toml README.md ./
COPY augforge ./augforge
COPY pipelines ./pipelines
COPY datasets ./datasets
RUN pip install ".[all]" && augforge ops >/dev/null

WORKDIR /work
ENTRYPOINT ["augforge"]
CMD ["--help"]
