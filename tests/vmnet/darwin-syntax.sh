#!/bin/sh
# Syntax-checks the Darwin vmnet backend on a machine without the macOS SDK.
# usage: darwin-syntax.sh CLANG DECLS_DIR SOURCE
clang=$1 decls=$2 src=$3
if [ -z "$clang" ] || [ ! -x "$clang" ]; then
	echo "SKIP: clang not found (needed for -fblocks)"
	exit 77
fi
set -x
exec "$clang" -std=c11 -fblocks -fsyntax-only -Werror -Wall -Wextra -Wno-unused-parameter \
	-Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wpointer-arith -Wvla \
	-D_DARWIN_C_SOURCE -I"$decls" "$src"
