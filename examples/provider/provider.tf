# The ledger is a SQLite file that Terraform and eventaccess-sweeper share.
# Connection URLs are secrets: pass them in variables (or leave a connection out
# and set EVENTACCESS_CONNECTION_LEGACY instead). Only the name is ever recorded.
variable "legacy_db_url" {
  type      = string
  sensitive = true
}

provider "eventaccess" {
  ledger       = "/var/lib/eventaccess/ledger.db"
  max_duration = "168h"

  connections = {
    legacy = { url = var.legacy_db_url }
  }
}
