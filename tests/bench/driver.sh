# tests/bench/driver.sh: sourced by the benchmark scripts whose work is a Go
# driver under tests/bench: `run_driver PACKAGE NAME "$@"` builds the
# extension, then runs the driver from the repository root with --smoke
# and --write passed on as -smoke and -write.
run_driver() {
	local pkg=$1 name=$2 a
	shift 2
	local args=()
	for a in "$@"; do
		case "$a" in
		--smoke) args+=(-smoke) ;;
		--write) args+=(-write) ;;
		*) echo "usage: $name [--smoke] [--write]" >&2; exit 2 ;;
		esac
	done
	./build.sh >/dev/null
	exec go run "$pkg" "${args[@]}"
}
