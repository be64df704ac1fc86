# programs: every program that demo/run, test/run, bench/run,
# test/valgrind and test/matrix (with .ci/run) call (their scripts, the
# shell tests and benchmarks they source or run, the \! lines of the SQL
# they feed psql) comes from a
# Debian package the entry point installs, or from one that every Debian
# system has (Essential or Priority: required).  The programs are read off
# the scripts themselves (test/programs.pl), so a new program in a script
# cannot go unnoticed; each is traced to its package with dpkg, and a
# package counts as installed by an entry point when it is in the entry
# point's list or a dependency of one there (apt-cache depends --recurse).
. "$(dirname "$0")/../tap.sh"
cd "$BMF_ROOT" || exit 1

# functions and builtins: "name() {" anywhere in the files, and bash's own
functions() { sed -n -E 's/^[[:space:]]*([A-Za-z_][A-Za-z0-9_-]*)\(\)[[:space:]]*\{?.*$/\1/p' "$@" | sort -u; }
PGBIN=$(pg_config --bindir)
builtins=" $(compgen -b | tr '\n' ' ') $(compgen -k | tr '\n' ' ') "
# our own programs, run by path: scripts in the repository, test binaries
own=" $(find test bench demo debian -type f -printf '%f ' 2>/dev/null) fakeredis fake-sentinel netproxy fuzz_reply fuzz_template fuzz_url syscall seen "

# which package installed each program file, read once from dpkg's file
# lists (a dpkg -S per program took most of this test's time; dpkg -S
# stays the fallback, for diversions)
DPKG_INDEX=$BMF_WORK/dpkg-programs.index
awk '{ n = FILENAME; sub(/.*\//, "", n); sub(/\.list$/, "", n); sub(/:.*/, "", n); print $0 "\t" n }' \
	/var/lib/dpkg/info/*.list 2>/dev/null | grep -E '/(s?bin|lib/postgresql|libexec)/' >"$DPKG_INDEX"

# the package a program comes from on this machine, or from the map
package_of() {
	local prog=$1 path="" p
	[ -x "$PGBIN/$prog" ] && path="$PGBIN/$prog"	# scripts run PostgreSQL's own by path
	[ -z "$path" ] && path=$(command -v "$prog" 2>/dev/null)
	case $path in /*) ;; *) path="" ;; esac
	[ -z "$path" ] && path=$(find "$(dirname "$(pg_config --pgxs)")/.." -name "$prog" -type f 2>/dev/null | head -1)
	if [ -n "$path" ]; then
		for p in "$path" "$(readlink -f "$path")" "/usr${path#/usr}" "${path#/usr}"; do
			awk -F '\t' -v p="$p" '$1 == p { print $2; found = 1; exit } END { exit !found }' "$DPKG_INDEX" && return 0
		done
		for p in "$path" "$(readlink -f "$path")" "/usr${path#/usr}" "${path#/usr}"; do
			dpkg -S "$p" 2>/dev/null | grep -E '^[a-z0-9.+-]+(:[a-z0-9]+)?: /' | head -1 | cut -d: -f1 | grep . && return 0
		done
	fi
	for p in $BMF_PROGRAM_PACKAGES; do
		[ "${p%%=*}" = "$prog" ] && { echo "${p#*=}"; return 0; }
	done
	return 1
}

# base system: Essential, or Priority required
is_base() {
	case "$(dpkg-query -W -f='${Essential}/${Priority}' "$1" 2>/dev/null)" in
	yes/* | */required) return 0 ;;
	esac
	return 1
}

declare -A PKG_OF
# check ENTRY FILE...: every program of the files is covered; a +FILE
# only lends its functions (a library the entry sources for one or two of
# them: its other programs are not the entry's)
check_entry() {
	local entry=$1; shift
	local files=() libs=() lists pkgs closure prog pkg bad=() fns e
	for e in "$@"; do case $e in +*) libs+=("${e#+}") ;; *) files+=("$e") ;; esac; done
	# the packages the entry point's scripts install: bmf_install_packages
	# lines, with test/lib.sh's lists expanded
	lists=$(grep -h -E '^[^#]*bmf_install_packages ' "${files[@]}" | sed -E 's/^.*bmf_install_packages ([^);]*).*/\1/' | grep -v '"\$@"' | sort -u | tr '\n' ' ')
	pkgs=$(eval "echo $lists")
	closure=" $(for e in $pkgs; do echo "${e#*=}"; done | xargs apt-cache depends --recurse --no-recommends \
		--no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances 2>/dev/null | grep -v '^ ' | tr '\n' ' ') "
	fns=" $(functions "${files[@]}" "${libs[@]}" | tr '\n' ' ') "
	scan=$(perl test/programs.pl "${files[@]}")
	for prog in $(cut -f1 <<<"$scan" | sort -u); do
		case "$builtins$fns$own" in *" $prog "*) continue ;; esac
		case " $pkgs " in *" $prog="*) continue ;; esac	# named with its package
		if [ -n "${PKG_OF[$prog]+x}" ]; then
			pkg=${PKG_OF[$prog]}
		else
			pkg=$(package_of "$prog") || pkg=""
			PKG_OF[$prog]=$pkg
		fi
		if [ -z "$pkg" ]; then
			bad+=("$prog (no Debian package known: add it to BMF_PROGRAM_PACKAGES in test/lib.sh)")
			continue
		fi
		is_base "$pkg" && continue
		case "$closure" in *" $pkg "*) continue ;; esac
		bad+=("$prog (package $pkg, used at $(awk -v p="$prog" '$1 == p { print $2; exit }' <<<"$scan"))")
	done
	if [ ${#bad[@]} -eq 0 ]; then
		ok "$entry installs every program its scripts call"
	else
		not_ok "$entry installs every program its scripts call" "missing: ${bad[*]}"
	fi
}

check_entry demo/run demo/run test/lib.sh test/redisctl demo/*.sql examples/*.sql
check_entry test/run test/run test/lib.sh test/tap.sh test/redisctl test/fuzz/run test/package debian/tests/installcheck test/t/*.sh sql/*.sql
check_entry bench/run bench/run bench/*.sh bench/*.sql test/lib.sh test/redisctl
check_entry test/valgrind test/valgrind test/lib.sh test/redisctl sql/*.sql
check_entry test/matrix test/matrix .ci/run +test/lib.sh

# the map names each program's real package (where this machine has it)
wrong=()
for e in $BMF_PROGRAM_PACKAGES; do
	prog=${e%%=*}
	want=${e#*=}
	command -v "$prog" >/dev/null 2>&1 || [ -x "$(pg_config --bindir)/$prog" ] || continue
	got=$(BMF_PROGRAM_PACKAGES="" package_of "$prog") || continue
	case " $got $(dpkg-query -W -f='${Provides}' "$got" 2>/dev/null | sed 's/([^)]*)//g' | tr ',' ' ') " in
	*" $want "*) ;;
	*) [ "$got" = "$want" ] || wrong+=("$prog: $want, but dpkg says $got") ;;
	esac
done
is "BMF_PROGRAM_PACKAGES names the package each installed program comes from" "${wrong[*]}" ""

# the scanner itself: it finds what a command line runs, and nothing else
cat >"$BMF_WORK/scan.sh" <<'EOF'
x=$(foo a | bar "$(baz)") && FOO=1 qux <<END
not a command
END
timeout 5 quux; setpriv --reuid=u -- corge "grault garply"
for w in waldo fred; do [[ $w =~ ^(plugh|xyzzy)$ ]] && thud; done
case $x in a) one ;; b|c) two ;; esac
P="$(pg_config --bindir)/pgbench"; arr=(not a command) "$BMF_WORK/own"
EOF
is "the scanner reads what a command line runs" "$(perl test/programs.pl "$BMF_WORK/scan.sh" | cut -f1 | tr '\n' ' ')" \
	"foo bar baz qux timeout quux setpriv corge thud one two pg_config pgbench own "
