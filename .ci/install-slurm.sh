#!/usr/bin/env bash
# Install the Debian packages the SLURM tests need (tests/slurm): a real single-node
# cluster with accounting, so that `sacct` works for the Snakemake SLURM plugin.
# Idempotent and quiet: does nothing when every binary is already present.
set -euo pipefail

needed=(slurmctld slurmd slurmdbd sacct sacctmgr sbatch munged mariadbd)
missing=0
for binary in "${needed[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || missing=1
done
[ "$missing" -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d stops the packages' init scripts from starting daemons during install;
# the tests start their own, on loopback, with state in a temporary directory.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    created_policy=1
fi
trap '[ "$created_policy" -eq 1 ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge slurmdbd mariadb-server >/dev/null
