# Import a grant by its ledger id (eventaccess-sweeper list shows it).
terraform import eventaccess_grant.cutover 01JEXAMPLE0000000000000000
