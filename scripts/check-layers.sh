#!/usr/bin/env bash
# Check that common/'s folders include each other one way only (see
# common/README.md): a file may include headers of its own folder and of
# the folders listed for it below, never of a folder that depends on it.
# Prints each offending include and exits 1; exits 0 when the tree is clean.
set -euo pipefail
cd "$(dirname "$0")/../common"

declare -A allowed=(
    [base]="base"
    [state]="base state"
    [output]="base output"
    [delivery]="base state delivery"
    [cloud]="base state delivery cloud"
    [source]="base state delivery cloud source"
    [worker]="base state output delivery cloud source worker"
)

# header name -> folder
declare -A home=()
for dir in "${!allowed[@]}"; do
    for h in "$dir"/*.h; do
        [ -e "$h" ] && home[$(basename "$h")]=$dir
    done
done

bad=0
for dir in "${!allowed[@]}"; do
    for f in "$dir"/*.c "$dir"/*.h; do
        [ -e "$f" ] || continue
        while read -r inc; do
            h=${inc#\"}
            h=${h%\"}
            target=${home[$h]:-}
            if [ -z "$target" ]; then
                # not a common/ header (a worker's, say): never allowed here
                if [[ $h == hr_* ]]; then continue; fi
                echo "common/$f includes \"$h\", which is not in common/" >&2
                bad=1
                continue
            fi
            case " ${allowed[$dir]} " in
            *" $target "*) ;;
            *)
                echo "common/$f includes $target/$h: $dir/ may include only ${allowed[$dir]}" >&2
                bad=1
                ;;
            esac
        done < <(sed -n 's/^#include \("[^"]*"\).*/\1/p' "$f")
    done
done
# every folder is known
for d in */; do
    d=${d%/}
    [ -n "${allowed[$d]:-}" ] || { echo "common/$d/ is not in the layer table" >&2; bad=1; }
done
exit $bad
