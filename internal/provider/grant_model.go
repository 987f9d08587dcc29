package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
)

// grantModel is the Terraform shape of eventaccess_grant.
type grantModel struct {
	ID             types.String         `tfsdk:"id"`
	Owner          types.String         `tfsdk:"owner"`
	Justification  types.String         `tfsdk:"justification"`
	Event          types.Object         `tfsdk:"event"`
	Duration       timetypes.GoDuration `tfsdk:"duration"`
	ExpiresAt      timetypes.RFC3339    `tfsdk:"expires_at"`
	Target         types.Object         `tfsdk:"target"`
	AdoptExisting  types.Bool           `tfsdk:"adopt_existing"`
	GrantedAt      timetypes.RFC3339    `tfsdk:"granted_at"`
	Status         types.String         `tfsdk:"status"`
	EndReason      types.String         `tfsdk:"end_reason"`
	EndedAt        timetypes.RFC3339    `tfsdk:"ended_at"`
	RevokedBy      types.String         `tfsdk:"revoked_by"`
	VerifiedAt     timetypes.RFC3339    `tfsdk:"verified_at"`
	Drift          types.String         `tfsdk:"drift"`
	RevokeAttempts types.Int64          `tfsdk:"revoke_attempts"`
	LastError      types.String         `tfsdk:"last_error"`
}

type eventModel struct {
	ID   types.String `tfsdk:"id"`
	Kind types.String `tfsdk:"kind"`
	URL  types.String `tfsdk:"url"`
}

type targetModel struct {
	PostgreSQL types.Object `tfsdk:"postgresql"`
}

type postgresqlModel struct {
	Connection        types.String `tfsdk:"connection"`
	Role              types.String `tfsdk:"role"`
	Member            types.String `tfsdk:"member"`
	WithAdminOption   types.Bool   `tfsdk:"with_admin_option"`
	TerminateSessions types.Bool   `tfsdk:"terminate_sessions"`
}

var eventAttrTypes = map[string]attr.Type{
	"id":   types.StringType,
	"kind": types.StringType,
	"url":  types.StringType,
}

var postgresqlAttrTypes = map[string]attr.Type{
	"connection":         types.StringType,
	"role":               types.StringType,
	"member":             types.StringType,
	"with_admin_option":  types.BoolType,
	"terminate_sessions": types.BoolType,
}

var targetAttrTypes = map[string]attr.Type{
	"postgresql": types.ObjectType{AttrTypes: postgresqlAttrTypes},
}

// known reports whether every value the domain needs is known (not unknown).
// Plans with unknown values are checked again at apply.
func (m *grantModel) known(ctx context.Context) bool {
	if m.Owner.IsUnknown() || m.Justification.IsUnknown() || m.Event.IsUnknown() || m.Target.IsUnknown() ||
		m.Duration.IsUnknown() || m.AdoptExisting.IsUnknown() {
		return false
	}
	if !m.Event.IsNull() {
		for _, v := range m.Event.Attributes() {
			if v.IsUnknown() {
				return false
			}
		}
	}
	if !m.Target.IsNull() {
		var t targetModel
		if d := m.Target.As(ctx, &t, basetypes.ObjectAsOptions{}); d.HasError() || t.PostgreSQL.IsUnknown() {
			return false
		}
		if !t.PostgreSQL.IsNull() {
			for _, v := range t.PostgreSQL.Attributes() {
				if v.IsUnknown() {
					return false
				}
			}
		}
	}
	return true
}

// toGrant reads the declared fields (not the computed ones) into a domain grant.
func (m *grantModel) toGrant(ctx context.Context) (*grant.Grant, diag.Diagnostics) {
	var diags diag.Diagnostics
	g := &grant.Grant{
		ID:            m.ID.ValueString(),
		Owner:         m.Owner.ValueString(),
		Justification: m.Justification.ValueString(),
		AdoptExisting: m.AdoptExisting.ValueBool(),
	}
	if !m.Event.IsNull() && !m.Event.IsUnknown() {
		var e eventModel
		diags.Append(m.Event.As(ctx, &e, basetypes.ObjectAsOptions{})...)
		g.Event = grant.Event{ID: e.ID.ValueString(), Kind: grant.EventKind(e.Kind.ValueString()), URL: e.URL.ValueString()}
	}
	if !m.Target.IsNull() && !m.Target.IsUnknown() {
		var t targetModel
		diags.Append(m.Target.As(ctx, &t, basetypes.ObjectAsOptions{})...)
		if !t.PostgreSQL.IsNull() && !t.PostgreSQL.IsUnknown() {
			var p postgresqlModel
			diags.Append(t.PostgreSQL.As(ctx, &p, basetypes.ObjectAsOptions{})...)
			g.Target.PostgreSQL = &grant.PostgreSQLTarget{
				Connection:        p.Connection.ValueString(),
				Role:              p.Role.ValueString(),
				Member:            p.Member.ValueString(),
				WithAdminOption:   p.WithAdminOption.ValueBool(),
				TerminateSessions: p.TerminateSessions.ValueBool(),
			}
		}
	}
	if !m.Duration.IsNull() && !m.Duration.IsUnknown() {
		d, ds := m.Duration.ValueGoDuration()
		diags.Append(ds...)
		g.Requested = d
	}
	return g, diags
}

// requestedExpiry returns the expiry the configuration asks for.
func (m *grantModel) requestedExpiry() (grant.Expiry, diag.Diagnostics) {
	var e grant.Expiry
	var diags diag.Diagnostics
	if !m.Duration.IsNull() && !m.Duration.IsUnknown() {
		d, ds := m.Duration.ValueGoDuration()
		diags.Append(ds...)
		e.Duration = d
	}
	if !m.ExpiresAt.IsNull() && !m.ExpiresAt.IsUnknown() {
		t, ds := m.ExpiresAt.ValueRFC3339Time()
		diags.Append(ds...)
		e.At = t
	}
	return e, diags
}

// fromGrant writes every field of g into the model. Declared values that are
// semantically equal to what the model already holds are kept as written (a
// duration of "60m" stays "60m", not "1h0m0s").
func (m *grantModel) fromGrant(ctx context.Context, g *grant.Grant) diag.Diagnostics {
	var diags diag.Diagnostics
	m.ID = types.StringValue(g.ID)
	m.Owner = types.StringValue(g.Owner)
	m.Justification = optString(g.Justification)

	ev, ds := types.ObjectValueFrom(ctx, eventAttrTypes, eventModel{
		ID:   types.StringValue(g.Event.ID),
		Kind: types.StringValue(string(kindOrOther(g.Event.Kind))),
		URL:  optString(g.Event.URL),
	})
	diags.Append(ds...)
	m.Event = ev

	tgt := targetModel{PostgreSQL: types.ObjectNull(postgresqlAttrTypes)}
	if p := g.Target.PostgreSQL; p != nil {
		pg, ds := types.ObjectValueFrom(ctx, postgresqlAttrTypes, postgresqlModel{
			Connection:        types.StringValue(p.Connection),
			Role:              types.StringValue(p.Role),
			Member:            types.StringValue(p.Member),
			WithAdminOption:   types.BoolValue(p.WithAdminOption),
			TerminateSessions: types.BoolValue(p.TerminateSessions),
		})
		diags.Append(ds...)
		tgt.PostgreSQL = pg
	}
	tv, ds := types.ObjectValueFrom(ctx, targetAttrTypes, tgt)
	diags.Append(ds...)
	m.Target = tv

	m.AdoptExisting = types.BoolValue(g.AdoptExisting)

	if g.Requested > 0 {
		d := timetypes.NewGoDurationValueFromStringMust(grant.FormatDuration(g.Requested))
		if cur, ds := m.Duration.ValueGoDuration(); ds.HasError() || m.Duration.IsNull() || m.Duration.IsUnknown() || cur != g.Requested {
			m.Duration = d
		}
	} else {
		m.Duration = timetypes.NewGoDurationNull()
	}
	if cur, ds := m.ExpiresAt.ValueRFC3339Time(); ds.HasError() || m.ExpiresAt.IsNull() || m.ExpiresAt.IsUnknown() || !cur.Equal(g.ExpiresAt) {
		m.ExpiresAt = timeValue(g.ExpiresAt)
	}

	m.GrantedAt = timeValue(g.GrantedAt)
	m.Status = types.StringValue(string(g.Status))
	m.EndReason = optString(string(g.EndReason))
	m.EndedAt = timeValue(g.EndedAt)
	m.RevokedBy = optString(string(g.RevokedBy))
	m.VerifiedAt = timeValue(g.VerifiedAt)
	m.Drift = optString(string(g.Drift))
	m.RevokeAttempts = types.Int64Value(int64(g.RevokeAttempts))
	m.LastError = optString(g.LastError)
	return diags
}

func kindOrOther(k grant.EventKind) grant.EventKind {
	if k == "" {
		return grant.KindOther
	}
	return k
}

func optString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func timeValue(t time.Time) timetypes.RFC3339 {
	if t.IsZero() {
		return timetypes.NewRFC3339Null()
	}
	return timetypes.NewRFC3339TimeValue(t.UTC())
}
