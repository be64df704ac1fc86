# layers: the sources follow their layers (docs/design.md), and no
# function is longer than 110 lines: every
# #include of a project header names its folder and points to the file's
# own layer or one below it, features reach Redis only through client/ and
# xact/, only wire/resp.c includes hiredis and only wire/transport.c the
# socket and TLS headers (test/layers.pl).  No servers.
. "$(dirname "$0")/../tap.sh"
cd "$BMF_ROOT" || exit 1

out=$(perl test/layers.pl src 2>&1)
is "every #include follows the layers" "$out" ""

# the checker itself: an upward include and a feature reaching the pool
# are caught
mkdir -p "$BMF_WORK/layers/src/base" "$BMF_WORK/layers/src/pool" "$BMF_WORK/layers/src/feature"
touch "$BMF_WORK/layers/src/pool/pool.h"
printf '#include "pool/pool.h"\n' >"$BMF_WORK/layers/src/base/up.c"
printf '#include "pool/pool.h"\n#include <hiredis/read.h>\n' >"$BMF_WORK/layers/src/feature/f.c"
{ printf 'static void\nlong_one(void)\n{\n'; for i in $(seq 1 120); do printf '\t(void) 0;\n'; done; printf '}\n'; } >"$BMF_WORK/layers/src/base/long.c"
out=$(perl test/layers.pl "$BMF_WORK/layers/src" 2>&1)
like "  it catches a header of a layer above" "$out" "src/base/up.c:1: includes pool/pool.h, of the layer pool above its own \(base\)"
like "  a feature that includes the pool" "$out" "src/feature/f.c:1: a feature includes pool/pool.h"
like "  hiredis outside wire/resp.c" "$out" "src/feature/f.c:2: includes <hiredis/read.h>"
like "  and a function of more than 110 lines" "$out" "src/base/long.c:2: long_one is 123 lines long"
