#!/bin/bash
# Here (the CPU machine): pack TensorFlow 2.21 for Python 3.12, its small pure-Python needs,
# Fashion-MNIST, CUDA 12 runtime headers and the shim into .gpu/p01..p09 (each part plus the
# working tree under the device tool's 64 MiB per call). See README.md beside this file.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
PIP=".venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
T=$(mktemp -d); rm -rf .gpu; mkdir -p .gpu/stage/fm .gpu/stage/shim
$PIP -d "$T/tf" tensorflow==2.21.0
$PIP -d .gpu/stage/whl keras==3.15.1 namex==0.1.0 optree==0.20.0 gast==0.7.0 astunparse==1.6.3 \
  google-pasta==0.2.0 termcolor==3.3.0 protobuf==7.36.2 ml_dtypes==0.6.0 wrapt==2.5.2 flatbuffers==25.12.19
$PIP -d "$T/rt" nvidia-cuda-runtime-cu12==12.9.79
(cd "$T/rt" && unzip -q nvidia_cuda_runtime*.whl 'nvidia/cuda_runtime/include/*')
cp -r "$T/rt/nvidia/cuda_runtime/include" .gpu/stage/shim/inc12
cp scripts/device_tf/shim.c scripts/device_tf/setup.sh .gpu/stage/shim/
cp /usr/share/datasets/fashion-mnist/*.gz .gpu/stage/fm/
mkdir "$T/x" && (cd "$T/x" && unzip -q "$T"/tf/tensorflow-*.whl -x 'tensorflow/include/*')
tar -C "$T/x" -cf - . | xz -6 -T2 > "$T/tf.tar.xz"      # about 5 minutes on 2 cores, 327 MB
tar -C .gpu -cf .gpu/p01 stage
split -n 8 -d --numeric-suffixes=2 -a 2 "$T/tf.tar.xz" .gpu/p
rm -rf "$T" .gpu/stage; ls -la .gpu
