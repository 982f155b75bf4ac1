#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the SLURM tests need (tests/slurm/cluster.py starts them): a
# single-node cluster with accounting (MariaDB + slurmdbd), because the Snakemake SLURM plugin polls
# job states with `sacct`. Idempotent and quiet: does nothing when every program is already there.
set -euo pipefail

programs=(slurmctld slurmd slurmdbd sacct sacctmgr sbatch srun munged mariadbd mariadb-install-db)
missing=0
for program in "${programs[@]}"; do
    command -v "$program" >/dev/null 2>&1 || missing=1
done
if [ "$missing" -eq 0 ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# Keep the packages' init scripts from starting system daemons (a MariaDB on port 3306, munged):
# the tests start their own, on loopback, with all state in a temporary directory.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    added_policy=1
fi
remove_policy() {
    if [ "$added_policy" -eq 1 ]; then
        $sudo rm -f "$policy"
    fi
}
trap remove_policy EXIT

$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge slurmdbd mariadb-server >/dev/null
