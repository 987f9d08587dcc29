#!/usr/bin/env bash
# make demo: the whole story in one minute, on a throwaway PostgreSQL.
#
#   1. start a throwaway PostgreSQL and create a role and a robot login
#   2. terraform apply: grant the robot the role for change CHG-2291, for 2 hours
#   3. the robot can SET ROLE; the ledger lists the grant
#   4. eventaccess-sweeper plan/run "as of 3 hours from now": the grant is revoked and verified
#   5. terraform plan: the revocation shows in state; nothing is granted again
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo="$root/.demo"
bin="$root/bin"

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

command -v terraform >/dev/null || { echo "make demo needs terraform on PATH"; exit 1; }
command -v psql >/dev/null || { echo "make demo needs psql (apt-get install postgresql-client)"; exit 1; }

rm -rf "$demo"
mkdir -p "$demo/tf"
go build -o "$bin/pgtmp" ./internal/pgtest/pgtmp

cleanup() {
  "$bin/pgtmp" stop "$demo/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "1. A throwaway PostgreSQL, with a role and a robot login"
url=$("$bin/pgtmp" start "$demo/pg")
# The connection URL holds a password: it goes to the environment only, never to a file
# that Terraform or the ledger keeps. Both the provider and the sweeper read it from
# EVENTACCESS_CONNECTION_<NAME>.
export EVENTACCESS_CONNECTION_LEGACY="$url"
export EVENTACCESS_LEDGER="$demo/ledger.db"
psql -q "$url" <<'SQL'
CREATE ROLE legacy_rw NOLOGIN;
CREATE ROLE migration_robot LOGIN PASSWORD 'robot-demo-pw';
SQL
robot_url=$(printf '%s' "$url" | sed -E 's#//[^@]*@#//migration_robot:robot-demo-pw@#')
can_set_role() {
  if psql -qtA "$robot_url" -c 'SET ROLE legacy_rw' >/dev/null 2>&1; then note "migration_robot: SET ROLE legacy_rw -> allowed"
  else note "migration_robot: SET ROLE legacy_rw -> permission denied"; fi
}
note "PostgreSQL on 127.0.0.1, data in .demo/pg; roles legacy_rw and migration_robot"
can_set_role

say "2. terraform apply: legacy_rw for migration_robot, for change CHG-2291, for 2 hours"
cat > "$demo/terraformrc" <<EOF
provider_installation {
  dev_overrides {
    "eventaccess/eventaccess" = "$bin"
  }
  direct {}
}
