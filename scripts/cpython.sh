#!/usr/bin/env bash
# Print the path of a CPython X.Y interpreter: pyenv's when it has one, else pythonX.Y on PATH.
# Fails, saying so, when neither exists or the one found is another version.
set -euo pipefail
version=${1:?usage: scripts/cpython.sh X.Y}
if prefix=$(pyenv prefix "$version" 2>/dev/null); then
    python=$prefix/bin/python3
elif ! python=$(command -v "python$version"); then
    echo "CPython $version is needed: not found by pyenv nor as python$version on PATH" >&2
    exit 1
fi
"$python" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$version', sys.version"
echo "$python"
