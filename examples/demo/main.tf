terraform {
  required_providers {
    eventaccess = { source = "eventaccess/eventaccess" }
  }
}

# The ledger and the "legacy" connection come from EVENTACCESS_LEDGER and
# EVENTACCESS_CONNECTION_LEGACY: no secret in this file.
provider "eventaccess" {}

resource "eventaccess_grant" "cutover" {
  owner         = "platform-team@example.com"
  justification = "Data migration for the cutover weekend"

  event = {
    id   = "CHG-2291"
    kind = "migration"
  }

  duration = "2h"

  target = {
    postgresql = {
      connection = "legacy"
      role       = "legacy_rw"
      member     = "migration_robot"
    }
  }
}

output "cutover" {
  value = {
    status     = eventaccess_grant.cutover.status
    end_reason = eventaccess_grant.cutover.end_reason
    revoked_by = eventaccess_grant.cutover.revoked_by
    ended_at   = eventaccess_grant.cutover.ended_at
    expires_at = eventaccess_grant.cutover.expires_at
  }
}
