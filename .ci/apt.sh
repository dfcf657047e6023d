# apt.sh: the one way the CI scripts install Debian packages (sourced, not run).
#
#   apt_update NAME                  apt-get update, once per script (NAME labels errors)
#   apt_first_candidate NAME PKG...  prints the first PKG apt can install (after apt_update)
#   apt_install NAME PKG...          installs the packages
#
# apt-cache's whole answer is read into a variable before it is matched: a pipe into `grep -q`
# under pipefail fails at random (grep exits at the first match, apt-cache gets SIGPIPE).

apt_sudo=""
[ "$(id -u)" -eq 0 ] || apt_sudo=sudo
apt_updated=""

apt_update() {
	command -v apt-get >/dev/null || {
		echo "$1: a package is missing and there is no apt-get to install it" >&2
		return 1
	}
	if [ -z "$apt_updated" ]; then
		$apt_sudo apt-get update -qq
		apt_updated=1
	fi
}

apt_first_candidate() {
	local name=$1 p policy
	shift
	for p in "$@"; do
		policy=$(apt-cache policy "$p" 2>/dev/null || true)
		if [[ $policy =~ Candidate:\ [0-9] ]]; then
			echo "$p"
			return 0
		fi
	done
	echo "$name: apt has none of: $*" >&2
	return 1
}

apt_install() {
	local name=$1
	shift
	apt_update "$name" || return 1
	echo "== $name: installing $*"
	$apt_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
