#!/bin/sh
# The launcher image's build stage, runnable on any machine with Python >= 3.11 and gcc: the Containerfile's build
# stage runs this script, and so does tests/test_packaging.py, so what CI checks is what the image gets.
#
#   packaging/build-stage.sh [OUT_DIR]
#
# Builds flowc's wheel, with the compiled flowc.runtime._ring extension, from the source tree this script belongs
# to into OUT_DIR (default: a new temporary directory), then checks the wheel: it holds the extension, and installed
# alone into a fresh virtual environment (dependencies from the package index) `flowc --version` and
# `flowc ring-include --cflags` run from it. The last line printed is the wheel's path.
# Environment: PYTHON (default python3) builds and checks; CC picks the C compiler (default gcc, else cc).
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

fail() {
  printf 'build-stage: %s\n' "$*" >&2
  exit 1
}

command -v "$python" >/dev/null 2>&1 || fail "no '$python' to build with (set PYTHON)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "flowc needs Python >= 3.11"
if [ -n "${CC:-}" ]; then
  command -v "$CC" >/dev/null 2>&1 || fail "CC='$CC' is not an executable"
else
  command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 \
    || fail "no C compiler: flowc.runtime._ring needs gcc (Debian: apt-get install gcc libc6-dev)"
fi

out=${1:-}
if [ -z "$out" ]; then
  out=$(mktemp -d "${TMPDIR:-/tmp}/flowc-wheel.XXXXXX")
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -z "$(ls "$out"/flowc-*.whl 2>/dev/null)" ] || fail "$out already holds a flowc wheel"

# The check environment lives beside nothing the caller keeps, and goes when the script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/flowc-build-stage.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
work=$(cd "$work" && pwd -P)
# Nothing from the caller's environment may put a source tree or another flowc on the path of the checks.
unset PYTHONPATH PYTHONHOME PYTHONUSERBASE || true
export PYTHONNOUSERSITE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

echo "build-stage: building the wheel from $src" >&2
"$python" -m pip wheel --no-deps --wheel-dir "$out" "$src" >&2
set -- "$out"/flowc-*.whl
[ "$#" -eq 1 ] && [ -f "$1" ] || fail "pip wheel wrote no single flowc wheel into $out"
wheel=$1

# A wheel without the extension would still install, and fail only when a launcher maps its first channel.
"$python" - "$wheel" <<'PY' || fail "$wheel does not contain the compiled flowc.runtime._ring extension"
import re
import sys
import sysconfig
import zipfile

suffix = sysconfig.get_config_var("EXT_SUFFIX")
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if f"flowc/runtime/_ring{suffix}" in names and not any(re.match(r"tests/|examples/", n) for n in names)
         else 1)
PY

echo "build-stage: installing $(basename "$wheel") into a fresh virtual environment" >&2
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$wheel" >&2
# From an empty directory, so that no source tree in the working directory can stand in for the installed one.
mkdir "$work/elsewhere"
(
  cd "$work/elsewhere"
  "$work/venv/bin/flowc" --version >&2
  cflags=$("$work/venv/bin/flowc" ring-include --cflags)
  echo "flowc ring-include --cflags: $cflags" >&2
  include=${cflags%% *}
  include=${include#-I}
  [ -f "$include/flowc_ring.h" ] || fail "no flowc_ring.h in the include directory of '$cflags'"
  case $(cd "$include" && pwd -P) in
    "$work"/venv/*) ;;
    *) fail "flowc ring-include --cflags points outside the installed wheel: $cflags" ;;
  esac
  "$work/venv/bin/python" -c 'import flowc.runtime._ring' || fail "the installed extension does not import"
)
echo "build-stage: ok" >&2
echo "$wheel"
