// Package deps pins the project's dependencies while the packages that use them
// are written. Remove once every dependency is imported for real.
package deps

import (
	_ "github.com/hashicorp/go-retryablehttp"
	_ "github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	_ "github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	_ "github.com/hashicorp/terraform-plugin-log/tflog"
	_ "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite"
)
