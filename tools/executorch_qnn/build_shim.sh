#!/bin/bash
# build_shim.sh: build the libQnnHtp.so shim (qnnhtp_shim.c) and a QNN_SDK_ROOT-shaped folder around it.
#
# Usage: bash tools/executorch_qnn/build_shim.sh [OUTDIR]     (default OUTDIR: /tmp/etqnn_shim)
# Then:  . OUTDIR/env.sh   (sets QNN_SDK_ROOT, QNNHTP_REAL, LD_LIBRARY_PATH for ExecuTorch's QNN backend)
#
# OUTDIR/lib/x86_64-linux-clang/ holds the shim as libQnnHtp.so plus links to every other QNN library of
# the onnxruntime-qnn wheel (QNN 2.51: libQnnSystem.so, libQnnHtpPrepare.so, the HTP emulator libs...).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-/tmp/etqnn_shim}
PY=${PYTHON:-python}
fail() { echo "build_shim.sh: $*" >&2; exit 1; }

command -v gcc >/dev/null || fail "gcc not found (needed to build the shim)"
QNN_DIR=$($PY -c "import onnxruntime_qnn, os; print(os.path.dirname(onnxruntime_qnn.__file__))" 2>/dev/null) \
  || fail "onnxruntime-qnn is not installed (pip install onnxruntime-qnn): it provides libQnnHtp.so"
[ -f "$QNN_DIR/libQnnHtp.so" ] || fail "no libQnnHtp.so in $QNN_DIR"
ET_DIR=$($PY -c "import executorch; print(list(executorch.__path__)[0])" 2>/dev/null) \
  || fail "executorch is not installed (pip install executorch)"
$PY -c "import executorch.backends.qualcomm.python" 2>/dev/null \
  || fail "executorch.backends.qualcomm is missing from this executorch install"

LIB="$OUT/lib/x86_64-linux-clang"
mkdir -p "$LIB"
gcc -O2 -Wall -shared -fPIC -Wl,-soname,libQnnHtp.so -Wl,-z,nodelete \
    -o "$LIB/libQnnHtp.so" "$HERE/qnnhtp_shim.c" -ldl
for f in "$QNN_DIR"/lib*.so; do
  [ "$(basename "$f")" = libQnnHtp.so ] || ln -sf "$f" "$LIB/"
done

cat > "$OUT/env.sh" <<EOF
# source me: ExecuTorch's QNN backend loads the shim, the shim loads the real QNN 2.51 libQnnHtp.so
export QNN_SDK_ROOT=$OUT
export QNNHTP_REAL=$QNN_DIR/libQnnHtp.so
export LD_LIBRARY_PATH=$LIB:$(dirname "$QNN_DIR")/onnxruntime_qnn.libs:$ET_DIR/lib:\${LD_LIBRARY_PATH:-}
EOF
# The same folder without the shim (real libQnnHtp.so): reproduces the failure.
mkdir -p "$OUT/noshim/lib/x86_64-linux-clang"
for f in "$QNN_DIR"/lib*.so; do ln -sf "$f" "$OUT/noshim/lib/x86_64-linux-clang/"; done
cat > "$OUT/env_noshim.sh" <<EOF
# source me: the unpatched setup (expected to fail with "unknown custom config socModel 0")
export QNN_SDK_ROOT=$OUT/noshim
unset QNNHTP_REAL
export LD_LIBRARY_PATH=$OUT/noshim/lib/x86_64-linux-clang:$(dirname "$QNN_DIR")/onnxruntime_qnn.libs:$ET_DIR/lib:\${LD_LIBRARY_PATH:-}
EOF
echo "built $LIB/libQnnHtp.so; now: . $OUT/env.sh   (or . $OUT/env_noshim.sh to see the failure)"
