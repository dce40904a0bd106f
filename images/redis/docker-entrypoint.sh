#!/bin/sh
# The official redis image's entrypoint contract (docker-library/redis), on Debian's packages.
set -e

# An option, or a config file, first: the arguments are meant for redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ]; then
	shift
	# The official image compiles protected mode off; Debian's default is on. Turn it off before
	# the user's arguments (so theirs still win), keeping a config file in first position.
	if [ -n "$1" ] && [ "${1%.conf}" != "$1" ]; then
		conf="$1"; shift
		set -- redis-server "$conf" --protected-mode no "$@"
	else
		set -- redis-server --protected-mode no "$@"
	fi
	if [ "$(id -u)" = '0' ]; then
		find . \! -user redis -exec chown redis '{}' +
		exec gosu redis "$@"
	fi
fi

exec "$@"
