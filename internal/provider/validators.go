package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// connectionNameValidator checks a connection name (letters, digits, '_', '-').
type connectionNameValidator struct{}

var _ validator.String = connectionNameValidator{}

func (connectionNameValidator) Description(context.Context) string {
	return "a connection name: letters, digits, '_' and '-'"
}

func (v connectionNameValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (connectionNameValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := grant.ValidConnectionName(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid connection name", err.Error()+".")
	}
}

// identifierValidator checks a PostgreSQL identifier: 1 to 63 bytes, no NUL.
// Any other character is allowed: identifiers are always quoted, never SQL.
type identifierValidator struct{ what string }

var _ validator.String = identifierValidator{}

func (v identifierValidator) Description(context.Context) string {
	return fmt.Sprintf("a PostgreSQL %s name of 1 to %d bytes", v.what, grant.MaxIdentifierLength)
}

func (v identifierValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v identifierValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	switch {
	case s == "":
		resp.Diagnostics.AddAttributeError(req.Path, "Empty "+v.what+" name", fmt.Sprintf("The %s name must not be empty.", v.what))
	case len(s) > grant.MaxIdentifierLength:
		resp.Diagnostics.AddAttributeError(req.Path, v.what+" name too long",
			fmt.Sprintf("%q is %d bytes long; PostgreSQL truncates identifiers longer than %d bytes, so it would name another %s.",
				s, len(s), grant.MaxIdentifierLength, v.what))
	case containsNUL(s):
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid "+v.what+" name", "The name must not contain a NUL character.")
	}
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// positiveDurationValidator checks a Go duration is greater than zero.
type positiveDurationValidator struct{}

var _ validator.String = positiveDurationValidator{}

func (positiveDurationValidator) Description(context.Context) string {
	return "a positive Go duration such as 72h or 90m"
}

func (v positiveDurationValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (positiveDurationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	d, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil {
		return // the GoDuration type reports the syntax error
	}
	if d <= 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration",
			fmt.Sprintf("duration must be positive, got %q; give a positive duration such as \"72h\".", req.ConfigValue.ValueString()))
	}
}
