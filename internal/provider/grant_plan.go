package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
)

var nonBlank = regexp.MustCompile(`\S`)

var objectAsOptions = basetypes.ObjectAsOptions{}

type diagError = diag.Diagnostic

// ledgerErr is the error diagnostic for a failed ledger read or write; op is
// "read" or "update".
func (r *grantResource) ledgerErr(op, id string, err error) diagError {
	what := "the ledger " + r.data.ledgerName
	if id != "" {
		what = "grant " + id + " in " + what
	}
	detail := fmt.Sprintf("Could not %s %s: %s", op, what, err)
	if errors.Is(err, ledger.ErrConflict) {
		detail += "\nAnother process (a sweeper run, or another terraform) changed it meanwhile: run the command again."
	}
	return diag.NewErrorDiagnostic("Cannot "+op+" the ledger", detail)
}

func diagErrors(p path.Path, summary, detail string) []diagError {
	if p.Equal(path.Empty()) {
		return []diagError{diag.NewErrorDiagnostic(summary, detail)}
	}
	return []diagError{diag.NewAttributeErrorDiagnostic(p, summary, detail)}
}

// ModifyPlan is where the grant's life shows in Terraform:
//   - create: policy, connection, target objects and standing access are all
//     checked here, so bad input fails at plan time and nothing is half-applied;
//   - an active grant past its expiry (or whose event closed) plans an in-place
//     update that revokes it;
//   - an ended grant plans nothing and warns: remove the block or renew it;
//   - a later expiry renews or extends in place (while the event is open);
//   - a permission missing at the target plans to restore it.
func (r *grantResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return // destroy, or provider not configured (validation only)
	}
	var plan, cfg grantModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	now := r.data.clock.Now()

	if req.State.Raw.IsNull() || len(resp.RequiresReplace) > 0 {
		r.planCreate(ctx, &plan, now, resp)
	} else {
		var state grantModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		r.planUpdate(ctx, &plan, &state, now, resp)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *grantResource) planCreate(ctx context.Context, plan *grantModel, now time.Time, resp *resource.ModifyPlanResponse) {
	setUnknownComputed(plan)
	plan.Status = types.StringValue(string(grant.StatusActive))
	plan.EndReason, plan.EndedAt, plan.RevokedBy = types.StringNull(), timetypes.NewRFC3339Null(), types.StringNull()
	plan.Drift, plan.LastError = types.StringNull(), types.StringNull()
	plan.RevokeAttempts = types.Int64Value(0)

	exp, diags := plan.requestedExpiry()
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.Duration.IsUnknown() || (plan.Duration.IsNull() && plan.ExpiresAt.IsUnknown()) {
		plan.ExpiresAt = timetypes.NewRFC3339Unknown()
	} else {
		if !plan.Duration.IsNull() {
			exp.At = time.Time{}
		}
		at, err := r.data.policy.Resolve(exp, now)
		if err != nil {
			p := path.Root("expires_at")
			if !plan.Duration.IsNull() {
				p = path.Root("duration")
			}
			resp.Diagnostics.AddAttributeError(p, "Invalid expiry", err.Error())
			return
		}
		if !plan.Duration.IsNull() {
			// Computed once, here, like time_offset: it does not move on later plans.
			plan.ExpiresAt = timetypes.NewRFC3339TimeValue(at.Truncate(time.Second))
		}
	}

	if !plan.known(ctx) {
		return // checked again at apply
	}
	g, diags := plan.toGrant(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := grant.ValidateRequest(g); err != nil {
		resp.Diagnostics.AddError("Invalid grant", err.Error())
		return
	}
	if d := r.eventOpenForNewGrant(ctx, g); d != nil {
		resp.Diagnostics.Append(d)
		return
	}
	_, ds := r.preflight(ctx, g, true)
	resp.Diagnostics.Append(ds...)
}

// eventOpenForNewGrant returns an error diagnostic when g's event is closed
// in the ledger: no new access is granted for a closed event.
func (r *grantResource) eventOpenForNewGrant(ctx context.Context, g *grant.Grant) diag.Diagnostic {
	ev, err := r.data.ledger.GetEvent(ctx, g.Event.ID)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil
	case err != nil:
		return r.ledgerErr("read", "", err)
	case !ev.Open:
		return diag.NewAttributeErrorDiagnostic(path.Root("event").AtName("id"), "Event is closed",
			fmt.Sprintf("The event %s was closed at %s (%s): no new access can be granted for it. Name the event that "+
				"justifies this access now.", ev.ID, ev.ClosedAt.Format(time.RFC3339), ev.CloseReason))
	}
	return nil
}

func (r *grantResource) planUpdate(ctx context.Context, plan, state *grantModel, now time.Time, resp *resource.ModifyPlanResponse) {
	// Start from what is recorded; only the cases below change computed values.
	copyComputed(plan, state)

	stateExpiry, diags := state.ExpiresAt.ValueRFC3339Time()
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	status := grant.Status(state.Status.ValueString())
	id := state.ID.ValueString()

	// What expiry does the configuration ask for now?
	var wanted time.Time
	expiryUnknown := false
	switch {
	case plan.Duration.IsUnknown() || (plan.Duration.IsNull() && plan.ExpiresAt.IsUnknown()):
		expiryUnknown = true
	case !plan.Duration.IsNull():
		d, ds := plan.Duration.ValueGoDuration()
		resp.Diagnostics.Append(ds...)
		sd, _ := state.Duration.ValueGoDuration()
		if state.Duration.IsNull() || d != sd {
			if status.Ended() || !now.Before(stateExpiry) {
				wanted = now.Add(d) // renewal: a fresh period from now
			} else {
				granted, ds := state.GrantedAt.ValueRFC3339Time()
				resp.Diagnostics.Append(ds...)
				wanted = granted.Add(d) // extension of the current period
			}
			wanted = wanted.Truncate(time.Second)
		} else {
			wanted = stateExpiry
		}
	default:
		t, ds := plan.ExpiresAt.ValueRFC3339Time()
		resp.Diagnostics.Append(ds...)
		wanted = t
	}
	if resp.Diagnostics.HasError() {
		return
	}
	expiryChanged := expiryUnknown || !wanted.Equal(stateExpiry)

	closed, closedAt := false, time.Time{}
	if ev, err := r.data.ledger.GetEvent(ctx, r.eventID(ctx, state)); err == nil && !ev.Open {
		closed, closedAt = true, ev.ClosedAt
	} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		resp.Diagnostics.Append(r.ledgerErr("read", "", err))
		return
	}

	if expiryChanged {
		if closed || grant.EndReason(state.EndReason.ValueString()) == grant.ReasonEventClosed {
			resp.Diagnostics.AddAttributeError(path.Root("event").AtName("id"), "Event is closed",
				fmt.Sprintf("Grant %s cannot be renewed or extended: its event %s was closed at %s. A closed event cannot be "+
					"renewed; declare the access for a new event (change event.id, which replaces this grant).",
					id, r.eventID(ctx, state), closedAt.Format(time.RFC3339)))
			return
		}
		if expiryUnknown {
			plan.ExpiresAt = timetypes.NewRFC3339Unknown()
			plan.Status = types.StringUnknown()
			return
		}
		if _, err := r.data.policy.Resolve(grant.Expiry{At: wanted}, now); err != nil {
			p := path.Root("expires_at")
			if !plan.Duration.IsNull() {
				p = path.Root("duration")
			}
			resp.Diagnostics.AddAttributeError(p, "Invalid expiry", err.Error())
			return
		}
		plan.ExpiresAt = timetypes.NewRFC3339TimeValue(wanted)
		plan.Status = types.StringValue(string(grant.StatusActive))
		plan.EndReason, plan.EndedAt, plan.RevokedBy = types.StringNull(), timetypes.NewRFC3339Null(), types.StringNull()
		plan.RevokeAttempts, plan.LastError = types.Int64Value(0), types.StringNull()
		if status.Ended() {
			plan.GrantedAt = timetypes.NewRFC3339Unknown()
		}
		if status.Ended() || state.Drift.ValueString() == string(grant.DriftMissing) {
			plan.VerifiedAt = timetypes.NewRFC3339Unknown()
			plan.Drift = types.StringUnknown()
		}
		if status.Ended() {
			resp.Diagnostics.AddWarning("Grant will be renewed",
				fmt.Sprintf("Grant %s ended at %s (%s). This apply grants it again until %s and records the renewal.",
					id, state.EndedAt.ValueString(), state.EndReason.ValueString(), wanted.Format(time.RFC3339)))
		}
		return
	}
	// The expiry stays as recorded (with duration it is not recomputed).
	plan.ExpiresAt = state.ExpiresAt

	switch {
	case status.Ended():
		resp.Diagnostics.AddWarning("Grant has ended",
			fmt.Sprintf("Grant %s ended at %s (%s, by %s). It stays in state as a tombstone and is never granted again by itself: "+
				"remove the block, or renew it with a later expires_at or a changed duration (while event %s is open).",
				id, state.EndedAt.ValueString(), state.EndReason.ValueString(), state.RevokedBy.ValueString(), r.eventID(ctx, state)))
		if state.Drift.ValueString() == string(grant.DriftLingering) {
			resp.Diagnostics.AddWarning("Ended access is present again",
				fmt.Sprintf("Grant %s ended, but the target shows the permission again (%s). The sweeper revokes it on its next run; "+
					"find out who granted it by hand.", id, grant.DriftLingering))
		}
	case !now.Before(stateExpiry) || closed || status == grant.StatusDue || status == grant.StatusIrrevocable:
		reason := grant.ReasonExpired
		switch {
		case closed:
			reason = grant.ReasonEventClosed
		case state.EndReason.ValueString() != "":
			reason = grant.EndReason(state.EndReason.ValueString())
		}
		if status == grant.StatusIrrevocable {
			resp.Diagnostics.AddWarning("Grant is irrevocable",
				fmt.Sprintf("Revoking grant %s failed %d times (last error: %s). The access may still be held: fix the target "+
					"or revoke it by hand. This apply tries again.", id, state.RevokeAttempts.ValueInt64(), state.LastError.ValueString()))
		}
		plan.Status = types.StringValue(string(grant.StatusRevoked))
		plan.EndReason = types.StringValue(string(reason))
		plan.EndedAt = timetypes.NewRFC3339Unknown()
		plan.RevokedBy = types.StringUnknown()
		plan.VerifiedAt = timetypes.NewRFC3339Unknown()
		plan.Drift = types.StringUnknown()
		plan.RevokeAttempts = types.Int64Unknown()
		plan.LastError = types.StringUnknown()
		resp.Diagnostics.AddWarning("Grant must end",
			fmt.Sprintf("Grant %s must end (%s; expiry %s). This apply revokes it and verifies the access is gone. To keep the "+
				"access, renew it instead: set a later expires_at or change duration.", id, reason, stateExpiry.Format(time.RFC3339)))
	case state.Drift.ValueString() == string(grant.DriftMissing):
		plan.Drift = types.StringNull()
		plan.VerifiedAt = timetypes.NewRFC3339Unknown()
		resp.Diagnostics.AddWarning("Access missing at the target",
			fmt.Sprintf("Grant %s is active until %s, but the target does not hold the permission (removed by hand?). "+
				"This apply grants it again.", id, stateExpiry.Format(time.RFC3339)))
	case state.Drift.ValueString() == string(grant.DriftWidened):
		resp.Diagnostics.AddWarning("Access wider than declared",
			fmt.Sprintf("Grant %s: the member holds more than declared (ADMIN OPTION that was not granted). The sweeper revokes "+
				"the grant whole as drift on its next run; remove the extra privilege by hand to keep the grant.", id))
	}
}

func (r *grantResource) eventID(ctx context.Context, m *grantModel) string {
	var e eventModel
	if m.Event.IsNull() || m.Event.IsUnknown() {
		return ""
	}
	_ = m.Event.As(ctx, &e, objectAsOptions)
	return e.ID.ValueString()
}

func setUnknownComputed(m *grantModel) {
	m.ID = types.StringUnknown()
	m.GrantedAt = timetypes.NewRFC3339Unknown()
	m.Status = types.StringUnknown()
	m.EndReason = types.StringUnknown()
	m.EndedAt = timetypes.NewRFC3339Unknown()
	m.RevokedBy = types.StringUnknown()
	m.VerifiedAt = timetypes.NewRFC3339Unknown()
	m.Drift = types.StringUnknown()
	m.RevokeAttempts = types.Int64Unknown()
	m.LastError = types.StringUnknown()
}

func copyComputed(dst, src *grantModel) {
	dst.ID = src.ID
	dst.GrantedAt = src.GrantedAt
	dst.Status = src.Status
	dst.EndReason = src.EndReason
	dst.EndedAt = src.EndedAt
	dst.RevokedBy = src.RevokedBy
	dst.VerifiedAt = src.VerifiedAt
	dst.Drift = src.Drift
	dst.RevokeAttempts = src.RevokeAttempts
	dst.LastError = src.LastError
}
