# The migration robot may hold legacy_rw for the cutover weekend, for change
# CHG-2291, owned by the platform team, for 72 hours at most.
resource "eventaccess_grant" "cutover" {
  owner         = "platform-team@example.com"
  justification = "Data migration for the legacy cutover weekend"

  event = {
    id   = "CHG-2291"
    kind = "migration"
    url  = "https://tickets.example.com/browse/CHG-2291"
  }

  duration = "72h"

  target = {
    postgresql = {
      connection         = "legacy"
      role               = "legacy_rw"
      member             = "migration_robot"
      terminate_sessions = true
    }
  }
}

# An incident grant with a fixed end. Closing the incident ends it earlier:
#   eventaccess-sweeper close-event INC-4711
resource "eventaccess_grant" "incident" {
  owner = "oncall-db@example.com"

  event = {
    id   = "INC-4711"
    kind = "incident"
  }

  expires_at = "2026-12-06T18:00:00Z"

  target = {
    postgresql = {
      connection = "legacy"
      role       = "pg_read_all_stats"
      member     = "diag_bot"
    }
  }
}
