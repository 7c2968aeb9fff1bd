#!/bin/bash
# Here (the CPU machine): pack TensorFlow 2.21 for Python 3.12, its small pure-Python needs,
# TFDS, Fashion-MNIST, CUDA 12 runtime headers and the shim into .gpu/p01, p02, ... (each
# part plus the working tree under the device tool's 64 MiB per call). See README.md.
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
$PIP -d .gpu/stage/tfds tensorflow-datasets==4.9.10 tensorflow-metadata==1.21.0 etils==1.15.0 \
  immutabledict==4.3.1 toml==0.10.2 importlib_resources==7.1.0 simple-parsing==0.1.9 dm-tree==0.1.10
.venv/bin/pip wheel -q --no-deps -w .gpu/stage/tfds promise==2.3     # an sdist only
$PIP -d "$T/rt" nvidia-cuda-runtime-cu12==12.9.79
(cd "$T/rt" && unzip -q nvidia_cuda_runtime*.whl 'nvidia/cuda_runtime/include/*')
cp -r "$T/rt/nvidia/cuda_runtime/include" .gpu/stage/shim/inc12
cp scripts/device_tf/shim.c scripts/device_tf/setup.sh .gpu/stage/shim/
cp /usr/share/datasets/fashion-mnist/*.gz .gpu/stage/fm/
mkdir "$T/x" && (cd "$T/x" && unzip -q "$T"/tf/tensorflow-*.whl -x 'tensorflow/include/*')
tar -C "$T/x" -cf - . | xz -6 -T2 > "$T/tf.tar.xz"      # about 5 minutes on 2 cores, 327 MB
tar -C .gpu -cf .gpu/p01 stage
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | du -cb --files0-from=- | tail -1 | cut -f1)
part=$(( 64 * 1024 * 1024 - tree - 1000000 ))       # what one call can carry beside the tree
[ "$(stat -c %s .gpu/p01)" -lt "$part" ] || { echo "working tree too large for p01" >&2; exit 1; }
split -b "$part" -d --numeric-suffixes=2 -a 2 "$T/tf.tar.xz" .gpu/p
rm -rf "$T" .gpu/stage; ls -la .gpu
