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
indent() { sed 's/^/   /'; }
# Terraform's notice about the locally built provider (dev_overrides) is noise here:
# drop that warning block, up to the blank line after it.
quiet_tf() {
  awk '/Warning: Provider development overrides are in effect/ {skip=1}
       skip && /^[│ ]*$/ && seen {skip=0; next}
       skip {if ($0 ~ /releases\./) seen=1; next}
       {print}' | grep -vE '^[╷╵]$' | cat -s
}

command -v terraform >/dev/null || { echo "make demo needs terraform on PATH"; exit 1; }
command -v psql >/dev/null || { echo "make demo needs psql (apt-get install postgresql-client)"; exit 1; }
[ -x "$bin/terraform-provider-eventaccess" ] && [ -x "$bin/eventaccess-sweeper" ] || { echo "run 'make demo' (it builds ./bin first)"; exit 1; }

rm -rf "$demo"
mkdir -p "$demo/tf"
go build -o "$bin/pgtmp" ./internal/pgtest/pgtmp

cleanup() { "$bin/pgtmp" stop "$demo/pg" >/dev/null 2>&1 || true; }
trap cleanup EXIT

say "1. A throwaway PostgreSQL, with a role and a robot login"
url=$("$bin/pgtmp" start "$demo/pg")
# The connection URL holds a password: it goes to the environment only, never to a
# file that Terraform or the ledger keeps. The provider and the sweeper both read it
# from EVENTACCESS_CONNECTION_<NAME>.
export EVENTACCESS_CONNECTION_LEGACY="$url"
export EVENTACCESS_LEDGER="$demo/ledger.db"
psql -q "$url" -c "CREATE ROLE legacy_rw NOLOGIN" -c "CREATE ROLE migration_robot LOGIN PASSWORD 'robot-demo-pw'"
robot_url=$(printf '%s' "$url" | sed -E 's#//[^@]*@#//migration_robot:robot-demo-pw@#')
can_set_role() {
  if psql -qtA "$robot_url" -c 'SET ROLE legacy_rw' >/dev/null 2>&1; then
    note "migration_robot: SET ROLE legacy_rw -> allowed"
  else
    note "migration_robot: SET ROLE legacy_rw -> permission denied"
  fi
}
note "PostgreSQL on 127.0.0.1 (data in .demo/pg); roles legacy_rw and migration_robot"
can_set_role

say "2. terraform apply: legacy_rw for migration_robot, for change CHG-2291, for 2 hours"
printf 'provider_installation {\n  dev_overrides {\n    "eventaccess/eventaccess" = "%s"\n  }\n  direct {}\n}\n' "$bin" > "$demo/terraformrc"
export TF_CLI_CONFIG_FILE="$demo/terraformrc"
export TF_IN_AUTOMATION=1
cp examples/demo/main.tf "$demo/tf/main.tf"
indent < "$demo/tf/main.tf"
(cd "$demo/tf" && terraform apply -auto-approve -no-color 2>&1 | quiet_tf | indent)

say "3. The access is there, and the ledger knows why, who answers for it and when it ends"
can_set_role
"$bin/eventaccess-sweeper" list | indent

later=$(date -u -d '+3 hours' +%Y-%m-%dT%H:%M:%SZ)
say "4. Nobody runs Terraform again. The scheduled sweeper runs; as of $later the grant has expired"
note "\$ eventaccess-sweeper plan --at $later"
"$bin/eventaccess-sweeper" plan --at "$later" --log-level warn | indent
note "\$ eventaccess-sweeper run --at $later"
"$bin/eventaccess-sweeper" run --at "$later" --log-level warn | indent
can_set_role

say "5. terraform plan: the revocation shows in state, and nothing is granted again"
(cd "$demo/tf" && terraform plan -no-color 2>&1 | quiet_tf | indent)

say "Done"
note "The grant ended with its reason, without Terraform, and the next plan tells the truth about it."
note "The throwaway PostgreSQL is stopped and removed; the ledger stays in .demo/ledger.db."
