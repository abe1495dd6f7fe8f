#!/bin/sh
# Install the Debian packages named on the command line that are missing.
# Runs apt-get update once before installing; needs root for that.
set -e
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "samepage: installing missing packages:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "samepage: not root; install them yourself: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
