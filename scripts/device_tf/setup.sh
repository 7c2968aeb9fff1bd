#!/bin/bash
# There (the lent GPU machine, CUDA 13, no TensorFlow): unpack what prepare.sh sent into
# /tmp/site and give CUDA 13's libraries the CUDA 12 names TensorFlow 2.21 dlopen()s.
# Afterwards: export PYTHONPATH=/tmp/site:$PWD LD_LIBRARY_PATH=/tmp/cu12:$(cat /tmp/ldpath)
set -euo pipefail
S=/tmp/site L=/tmp/cu12 C=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib
mkdir -p $S $L /usr/share/datasets/fashion-mnist
cp /tmp/stage/fm/*.gz /usr/share/datasets/fashion-mnist/
cat /tmp/chunks/p* | xz -d -T0 | tar -x -C $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $S /tmp/stage/whl/*.whl $(ls /tmp/stage/tfds/*.whl 2>/dev/null)
for b in libcublas libcublasLt libnvJitLink libcupti libnvrtc; do ln -sf $C/$b.so.13 $L/$b.so.12; done
for b in libcufft libcusolver; do ln -sf $C/$b.so.12 $L/$b.so.11; done
# libcudart.so.12 = CUDA 13's libcudart plus cudaGetDeviceProperties_v2 (shim.c).
gcc -O2 -shared -fPIC -I /tmp/stage/shim/inc12 -I /usr/local/cuda/include /tmp/stage/shim/shim.c \
  -o $L/libcudart.so.12 -Wl,-soname,libcudart.so.12 -Wl,--no-as-needed $C/libcudart.so.13 -ldl -Wl,-rpath,$C
echo "$C:/usr/lib/x86_64-linux-gnu" > /tmp/ldpath
