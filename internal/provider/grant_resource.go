package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
)

var (
	_ resource.Resource                     = (*grantResource)(nil)
	_ resource.ResourceWithConfigure        = (*grantResource)(nil)
	_ resource.ResourceWithImportState      = (*grantResource)(nil)
	_ resource.ResourceWithModifyPlan       = (*grantResource)(nil)
	_ resource.ResourceWithConfigValidators = (*grantResource)(nil)
)

func newGrantResource() resource.Resource { return &grantResource{} }

// grantResource is eventaccess_grant.
type grantResource struct {
	data *providerData
}

func (r *grantResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_grant"
}

func (r *grantResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	computedString := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	computedTime := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, CustomType: timetypes.RFC3339Type{}, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Grants one permission at a target for one business event, owned by one accountable " +
			"owner, with a hard expiry, and records it in the eventaccess ledger.\n\n" +
			"The grant ends at its expiry or when its event is closed, whether or not Terraform runs again: the " +
			"`eventaccess-sweeper` revokes it out of band and verifies at the target that the access is gone. An " +
			"ended grant stays in state as a tombstone (`status = \"revoked\"`); the next plan reports it and " +
			"never grants it again by itself. Renew it explicitly with a later `expires_at` or a changed " +
			"`duration` while its event is open, or remove the block.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The grant's ledger id (a ULID). Also the import id.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"owner": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "Who answers for this access: an email address or a team handle.",
				Validators:          []validator.String{stringvalidator.RegexMatches(nonBlank, "must not be blank")},
			},
			"justification": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Why the access is needed, in free text. Recorded in the ledger.",
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"event": schema.SingleNestedAttribute{
				Required:            true,
				MarkdownDescription: "The business event that justifies the access. Closing the event in the ledger (`eventaccess-sweeper close-event ID`) ends every grant for it.",
				Attributes: map[string]schema.Attribute{
					"id": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "The event's id: a ticket, change or incident number such as `CHG-2291` or `INC-4711`. Changing it replaces the grant: a new event is a new grant.",
						Validators:          []validator.String{stringvalidator.RegexMatches(nonBlank, "must not be blank"), stringvalidator.LengthAtMost(200)},
						PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
					},
					"kind": schema.StringAttribute{
						Optional:            true,
						Computed:            true,
						Default:             stringdefault.StaticString(string(grant.KindOther)),
						MarkdownDescription: "The kind of event, one of `" + strings.Join(grant.EventKinds(), "`, `") + "`. Defaults to `other`.",
						Validators:          []validator.String{stringvalidator.OneOf(grant.EventKinds()...)},
					},
					"url": schema.StringAttribute{
						Optional:            true,
						MarkdownDescription: "A link to the ticket or incident.",
						Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
					},
				},
			},
			"duration": schema.StringAttribute{
				Optional:   true,
				CustomType: timetypes.GoDurationType{},
				MarkdownDescription: "How long the access lasts from the moment it is granted, as a Go duration (`72h`, `90m`). " +
					"Exactly one of `duration` and `expires_at` must be set. `expires_at` is then computed once, at " +
					"creation, and kept. Changing the duration moves the expiry: on a grant that holds, it becomes " +
					"`granted_at` + the new duration (an extension, recorded); on an ended grant whose event is still " +
					"open, the access is granted again for the new duration from now (a renewal, recorded).",
				Validators: []validator.String{positiveDurationValidator{}},
			},
			"expires_at": schema.StringAttribute{
				Optional:   true,
				Computed:   true,
				CustomType: timetypes.RFC3339Type{},
				MarkdownDescription: "The hard expiry, an RFC 3339 timestamp (`2026-12-06T18:00:00Z`). Exactly one of " +
					"`duration` and `expires_at` must be set; with `duration` this is computed. Must be in the future " +
					"and within the provider's `max_duration`. A later value renews or extends the grant; an earlier " +
					"one (still in the future) shortens it.",
			},
			"target": schema.SingleNestedAttribute{
				Required:            true,
				MarkdownDescription: "The permission, at exactly one kind of target.",
				Attributes: map[string]schema.Attribute{
					"postgresql": schema.SingleNestedAttribute{
						Optional:            true,
						MarkdownDescription: "A PostgreSQL role membership: `GRANT role TO member`.",
						Attributes: map[string]schema.Attribute{
							"connection": schema.StringAttribute{
								Required:            true,
								MarkdownDescription: "The name of a connection configured in the provider (or in `EVENTACCESS_CONNECTION_<NAME>`). Only the name is recorded.",
								Validators:          []validator.String{connectionNameValidator{}},
								PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
							},
							"role": schema.StringAttribute{
								Required:            true,
								MarkdownDescription: "The role to grant. Any name is allowed: it is always quoted, never SQL.",
								Validators:          []validator.String{identifierValidator{what: "role"}},
								PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
							},
							"member": schema.StringAttribute{
								Required:            true,
								MarkdownDescription: "The role (usually a login: a service account or robot) that receives the membership.",
								Validators:          []validator.String{identifierValidator{what: "member"}},
								PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
							},
							"with_admin_option": schema.BoolAttribute{
								Optional:            true,
								Computed:            true,
								Default:             booldefault.StaticBool(false),
								MarkdownDescription: "Grant `WITH ADMIN OPTION`. Defaults to `false`. A member that holds ADMIN OPTION it was not granted is reported as `drift = \"widened\"`.",
								PlanModifiers:       []planmodifier.Bool{boolplanmodifier.RequiresReplace()},
							},
							"terminate_sessions": schema.BoolAttribute{
								Optional:            true,
								Computed:            true,
								Default:             booldefault.StaticBool(false),
								MarkdownDescription: "On revoke, also end the member's open sessions: a session that ran `SET ROLE` keeps the privilege after `REVOKE`. Defaults to `false`.",
							},
						},
					},
				},
				Validators: []validator.Object{
					objectvalidator.AtLeastOneOf(path.MatchRelative().AtName("postgresql")),
				},
			},
			"adopt_existing": schema.BoolAttribute{
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
				MarkdownDescription: "If the member already holds the permission outside eventaccess (standing access), " +
					"creating the grant fails unless this is `true`; then the standing access is adopted and ends " +
					"with the grant. Defaults to `false`.",
			},
			"granted_at":      computedTime("When the access was granted (or last renewed) and verified at the target."),
			"status":          computedString("`active`, `due` (must end, revocation pending or retrying), `revoked` (a tombstone) or `irrevocable` (revocation failed repeatedly: act now)."),
			"end_reason":      computedString("Why the grant ended or must end: `expired`, `event_closed`, `destroyed`, `drift` or `manual`."),
			"ended_at":        computedTime("When the grant ended."),
			"revoked_by":      computedString("Who ended it: `terraform`, `sweeper` or `cli`."),
			"verified_at":     computedTime("When an inspection of the target last confirmed the recorded state (present while active, absent once ended)."),
			"drift":           computedString("A difference between the ledger and the target: `missing` (active, but absent at the target: the next apply restores it), `widened` (the member holds more than declared), `lingering` (ended, but present again at the target: the sweeper revokes it)."),
			"revoke_attempts": schema.Int64Attribute{Computed: true, MarkdownDescription: "Failed revocation attempts so far."},
			"last_error":      computedString("The last revocation error, if any."),
		},
	}
}

func (r *grantResource) ConfigValidators(context.Context) []resource.ConfigValidator {
	return []resource.ConfigValidator{
		resourcevalidator.ExactlyOneOf(path.MatchRoot("duration"), path.MatchRoot("expires_at")),
	}
}

func (r *grantResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return
	}
	data, ok := req.ProviderData.(*providerData)
	if !ok {
		resp.Diagnostics.AddError("Unexpected provider data",
			fmt.Sprintf("Expected *providerData, got %T. This is a bug in the provider; please report it.", req.ProviderData))
		return
	}
	r.data = data
}

func (r *grantResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !grant.ValidID(req.ID) {
		resp.Diagnostics.AddError("Invalid import id",
			fmt.Sprintf("%q is not a grant id. Import a grant by its ledger id, a ULID such as 01JEXAMPLE0000000000000000 "+
				"(`eventaccess-sweeper list` shows them).", req.ID))
		return
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

func (r *grantResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan grantModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	g, diags := plan.toGrant(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	now := r.data.clock.Now()
	exp, diags := plan.requestedExpiry()
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	if exp.At.IsZero() {
		// Planned with unknown values: compute now.
		exp.At = now.Add(exp.Duration).Truncate(time.Second)
	}
	exp.Duration = 0
	expiresAt, err := r.data.policy.Resolve(exp, now)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("expires_at"), "Invalid expiry", err.Error())
		return
	}
	if err := grant.ValidateRequest(g); err != nil {
		resp.Diagnostics.AddError("Invalid grant", err.Error())
		return
	}

	g.ID = grant.NewID(now)
	g.GrantedAt = now
	g.ExpiresAt = expiresAt
	g.Status = grant.StatusActive
	ctx = tflog.SetField(ctx, "grant_id", g.ID)
	ctx = tflog.SetField(ctx, "target", g.TargetKey())
	ctx = tflog.SetField(ctx, "event_id", g.Event.ID)

	// Checked again at apply: the event may have closed since the plan.
	if d := r.eventOpenForNewGrant(ctx, g); d != nil {
		resp.Diagnostics.Append(d)
		return
	}
	mode, diags := r.preflight(ctx, g, false)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}

	// Record first: if the ledger cannot be written, the target is never touched.
	if err := r.data.ledger.CreateGrant(ctx, g, ledger.Entry{
		Type: ledger.EntryRequested, At: now, Actor: grant.ActorTerraform,
		Detail: fmt.Sprintf("%s; owner %s; expires %s; mode %s", g.Target, g.Owner, g.ExpiresAt.Format(time.RFC3339), mode),
	}); err != nil {
		resp.Diagnostics.AddError("Cannot record the grant in the ledger",
			fmt.Sprintf("Writing to the ledger %s failed: %s\nNothing was granted.", r.data.ledgerName, err))
		return
	}

	obs, err := r.apply(ctx, g, mode)
	if err != nil {
		r.abandon(ctx, g, mode, err)
		resp.Diagnostics.AddError("Cannot grant the access", err.Error()+"\n\nNothing was left granted; the attempt is recorded in the ledger.")
		return
	}
	now = r.data.clock.Now()
	g.VerifiedAt = now
	if err := r.data.ledger.UpdateGrant(ctx, g,
		ledger.Entry{Type: grantedEntry(mode), At: now, Actor: grant.ActorTerraform, Detail: g.Target.String()},
		ledger.Entry{Type: ledger.EntryVerified, At: now, Actor: grant.ActorTerraform, Detail: obs.Evidence},
	); err != nil {
		resp.Diagnostics.AddError("Cannot record the grant in the ledger",
			fmt.Sprintf("The access was granted and verified, but recording that in the ledger %s failed: %s\n"+
				"The grant is recorded as requested, with its expiry, so the sweeper will still end it. Run terraform apply again.", r.data.ledgerName, err))
		return
	}
	tflog.Info(ctx, "grant created", map[string]any{"mode": string(mode), "expires_at": g.ExpiresAt.Format(time.RFC3339)})

	resp.Diagnostics.Append(plan.fromGrant(ctx, g)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// grantMode is how a new grant came to hold its permission.
type grantMode string

const (
	modeGrant  grantMode = "grant"  // granted at the target
	modeShared grantMode = "shared" // another grant already holds it
	modeAdopt  grantMode = "adopt"  // standing access taken over
)

func grantedEntry(m grantMode) ledger.EntryType {
	switch m {
	case modeShared:
		return ledger.EntryShared
	case modeAdopt:
		return ledger.EntryAdopted
	default:
		return ledger.EntryGranted
	}
}

// preflight checks, without changing anything, that g can be granted: the
// connection resolves, the objects exist, and the permission is not standing
// access (unless adopted). It is called at plan time and again at apply.
//
// At plan time a role or member that does not exist, or a target that cannot
// be reached, is a warning: another resource of the same configuration may be
// about to create it, and the apply checks again (then it is an error, and
// nothing is granted or recorded).
func (r *grantResource) preflight(ctx context.Context, g *grant.Grant, atPlan bool) (grantMode, []diagError) {
	attr := path.Root("target").AtName("postgresql")
	if _, err := r.data.connections.Resolve(g.Target.Connection()); err != nil {
		return "", diagErrors(attr.AtName("connection"), "Unknown connection", err.Error())
	}
	if err := r.data.targets.Check(ctx, g.Target); err != nil {
		switch {
		case errors.Is(err, target.ErrNotFound) && atPlan:
			return "", []diagError{diag.NewAttributeWarningDiagnostic(attr, "Target does not exist yet",
				err.Error()+"\nIf another resource of this configuration creates it, make this grant depend on it. "+
					"Otherwise the apply fails here, and nothing is granted or recorded.")}
		case errors.Is(err, target.ErrNotFound):
			return "", diagErrors(attr, "Target does not exist", err.Error())
		case atPlan:
			return "", []diagError{diag.NewAttributeWarningDiagnostic(attr, "Cannot check the target",
				err.Error()+"\nThe apply checks again before granting anything.")}
		}
		return "", diagErrors(attr, "Cannot check the target", err.Error())
	}
	holders, err := r.data.ledger.Holders(ctx, g.TargetKey(), g.ID)
	if err != nil {
		return "", []diagError{r.ledgerErr("read", "", err)}
	}
	if len(holders) > 0 {
		return modeShared, nil
	}
	obs, err := r.data.targets.Inspect(ctx, g.Target)
	if err != nil {
		return "", diagErrors(attr, "Cannot inspect the target", err.Error())
	}
	if obs.Holds() {
		if !g.AdoptExisting {
			return "", diagErrors(path.Root("adopt_existing"), "Standing access",
				fmt.Sprintf("The member already holds this permission outside eventaccess (%s). eventaccess will not take "+
					"over access it did not grant unless you say so: set adopt_existing = true to adopt it (it will then "+
					"END with this grant), or remove the standing access first.", g.Target))
		}
		return modeAdopt, nil
	}
	return modeGrant, nil
}

// apply makes the target hold g's permission and verifies it. An adopted
// permission is only verified. A shared one is granted too (GRANT is
// idempotent): the other holder may be a grant created in the same apply that
// is recorded but not yet applied.
func (r *grantResource) apply(ctx context.Context, g *grant.Grant, mode grantMode) (target.Observation, error) {
	if mode != modeAdopt {
		if err := r.data.targets.Grant(ctx, g.Target); err != nil {
			return target.Observation{}, fmt.Errorf("granting %s: %w", g.Target, err)
		}
	}
	obs, err := r.data.targets.Inspect(ctx, g.Target)
	if err != nil {
		return obs, fmt.Errorf("verifying %s: %w", g.Target, err)
	}
	if !obs.Holds() {
		return obs, fmt.Errorf("verifying %s: the target reports the permission absent after granting it (%s)", g.Target, obs.Evidence)
	}
	return obs, nil
}

// abandon undoes a grant whose application failed, so nothing is left half-done,
// and records the failure as a tombstone.
func (r *grantResource) abandon(ctx context.Context, g *grant.Grant, mode grantMode, cause error) {
	now := r.data.clock.Now()
	detail := cause.Error()
	if mode == modeGrant {
		if err := r.data.targets.Revoke(ctx, g.Target); err != nil {
			detail += "; rollback revoke failed: " + err.Error()
			tflog.Error(ctx, "rollback of a failed grant failed", map[string]any{"error": err.Error()})
		}
	}
	g.LastError = cause.Error()
	_ = g.MarkRevoked(grant.ReasonManual, grant.ActorTerraform, now)
	g.LastError = cause.Error()
	if err := r.data.ledger.UpdateGrant(ctx, g, ledger.Entry{Type: ledger.EntryGrantFailed, At: now, Actor: grant.ActorTerraform, Detail: detail}); err != nil {
		tflog.Error(ctx, "recording a failed grant failed", map[string]any{"error": err.Error()})
	}
}

func (r *grantResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state grantModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	g, err := r.data.ledger.GetGrant(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		// Never drop a grant from state silently: the next apply would grant it again.
		resp.Diagnostics.AddError("Grant not found in the ledger",
			fmt.Sprintf("The grant %s is not in the ledger %s. Check that the provider's ledger (or EVENTACCESS_LEDGER) "+
				"points at the ledger that recorded it. If the record is really gone, remove the resource from state "+
				"with `terraform state rm` and check the target by hand: the access may still be held.", id, r.data.ledgerName))
		return
	}
	if err != nil {
		resp.Diagnostics.Append(r.ledgerErr("read", id, err))
		return
	}
	ctx = tflog.SetField(ctx, "grant_id", g.ID)

	prevDrift := state.Drift.ValueString()
	drift, obs, err := r.observe(ctx, g)
	if err != nil {
		resp.Diagnostics.AddWarning("Cannot inspect the target",
			fmt.Sprintf("Grant %s (%s): %s\nThe ledger's record is shown; drift is not known until the target can be reached.", g.ID, g.Target, err))
		drift = grant.Drift(prevDrift)
	} else {
		tflog.Debug(ctx, "inspected target", map[string]any{"state": string(obs.State), "drift": string(drift)})
	}
	g.Drift = drift

	resp.Diagnostics.Append(state.fromGrant(ctx, g)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// observe inspects the target and derives the drift for g.
func (r *grantResource) observe(ctx context.Context, g *grant.Grant) (grant.Drift, target.Observation, error) {
	obs, err := r.data.targets.Inspect(ctx, g.Target)
	if err != nil {
		return grant.DriftNone, obs, err
	}
	switch {
	case g.Status.Holds():
		switch {
		case !obs.Holds():
			return grant.DriftMissing, obs, nil
		case obs.State == target.Widened && !g.Target.PostgreSQL.WithAdminOption:
			declared, err := r.adminDeclaredByOthers(ctx, g)
			if err != nil {
				return grant.DriftNone, obs, err
			}
			if !declared {
				return grant.DriftWidened, obs, nil
			}
		}
	case g.Status.Ended() && obs.Holds():
		holders, err := r.data.ledger.Holders(ctx, g.TargetKey(), g.ID)
		if err != nil {
			return grant.DriftNone, obs, err
		}
		if len(holders) == 0 {
			return grant.DriftLingering, obs, nil
		}
	}
	return grant.DriftNone, obs, nil
}

// adminDeclaredByOthers reports whether another grant that holds g's
// permission declares ADMIN OPTION (then the option is not drift).
func (r *grantResource) adminDeclaredByOthers(ctx context.Context, g *grant.Grant) (bool, error) {
	ids, err := r.data.ledger.Holders(ctx, g.TargetKey(), g.ID)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		h, err := r.data.ledger.GetGrant(ctx, id)
		if err != nil {
			return false, err
		}
		if p := h.Target.PostgreSQL; p != nil && p.WithAdminOption {
			return true, nil
		}
	}
	return false, nil
}

func (r *grantResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state grantModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	ctx = tflog.SetField(ctx, "grant_id", id)
	g, err := r.data.ledger.GetGrant(ctx, id)
	if err != nil {
		resp.Diagnostics.Append(r.ledgerErr("read", id, err))
		return
	}
	declared, diags := plan.toGrant(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	now := r.data.clock.Now()
	// Take the grant for this apply, as the sweeper does, so the two never act
	// on it at once. Ending it goes through the engine, which claims it itself.
	if plannedStatus := grant.Status(plan.Status.ValueString()); plannedStatus != grant.StatusRevoked || !g.Status.Holds() {
		if err := r.data.ledger.Claim(ctx, g, "terraform-"+grant.NewID(now), now, time.Minute); err != nil {
			resp.Diagnostics.AddError("Grant is busy",
				fmt.Sprintf("Grant %s is being changed by another process (a sweeper run?): %s\nRun terraform apply again in a moment.", id, err))
			return
		}
	}

	// 1. Metadata that changes nothing at the target.
	var changes []string
	if declared.Owner != g.Owner {
		changes = append(changes, fmt.Sprintf("owner %q -> %q", g.Owner, declared.Owner))
		g.Owner = declared.Owner
	}
	if declared.Justification != g.Justification {
		changes = append(changes, "justification changed")
		g.Justification = declared.Justification
	}
	if declared.Event.Kind != g.Event.Kind || declared.Event.URL != g.Event.URL {
		changes = append(changes, "event details changed")
		g.Event.Kind, g.Event.URL = declared.Event.Kind, declared.Event.URL
	}
	if declared.Target.PostgreSQL != nil && g.Target.PostgreSQL != nil &&
		declared.Target.PostgreSQL.TerminateSessions != g.Target.PostgreSQL.TerminateSessions {
		changes = append(changes, fmt.Sprintf("terminate_sessions -> %t", declared.Target.PostgreSQL.TerminateSessions))
		g.Target.PostgreSQL.TerminateSessions = declared.Target.PostgreSQL.TerminateSessions
	}
	if declared.AdoptExisting != g.AdoptExisting {
		g.AdoptExisting = declared.AdoptExisting
		changes = append(changes, fmt.Sprintf("adopt_existing -> %t", declared.AdoptExisting))
	}
	g.Requested = declared.Requested
	if len(changes) > 0 {
		if err := r.data.ledger.UpdateGrant(ctx, g, ledger.Entry{Type: ledger.EntryUpdated, At: now, Actor: grant.ActorTerraform, Detail: strings.Join(changes, "; ")}); err != nil {
			resp.Diagnostics.Append(r.ledgerErr("update", id, err))
			return
		}
	}

	// 2. The status the plan decided.
	plannedStatus := grant.Status(plan.Status.ValueString())
	plannedExpiry, diags := plan.ExpiresAt.ValueRFC3339Time()
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	switch {
	case plannedStatus == grant.StatusRevoked && g.Status.Holds():
		reason := grant.EndReason(plan.EndReason.ValueString())
		if reason == grant.ReasonNone {
			reason = grant.ReasonExpired
		}
		if _, err := r.data.engine.End(ctx, g, reason, grant.ActorTerraform); err != nil {
			resp.Diagnostics.AddError("Cannot revoke the grant",
				fmt.Sprintf("Grant %s (%s) must end (%s), but revoking it failed: %s\nThe failure is recorded; the sweeper retries it, or run terraform apply again.", g.ID, g.Target, reason, err))
			return
		}
		tflog.Info(ctx, "expired grant revoked at apply", map[string]any{"end_reason": string(reason)})
	case plannedStatus == grant.StatusActive && !plannedExpiry.Equal(g.ExpiresAt):
		missing := state.Drift.ValueString() == string(grant.DriftMissing)
		resp.Diagnostics.Append(r.renew(ctx, g, plannedExpiry, now, missing)...)
		if resp.Diagnostics.HasError() {
			return
		}
	case plannedStatus == grant.StatusActive && g.Status.Holds() && state.Drift.ValueString() == string(grant.DriftMissing) && plan.Drift.IsNull():
		resp.Diagnostics.Append(r.restore(ctx, g, now)...)
		if resp.Diagnostics.HasError() {
			return
		}
	case len(changes) == 0:
		// Nothing to record (e.g. a duration written differently): release the claim.
		if err := r.data.ledger.UpdateGrant(ctx, g); err != nil {
			resp.Diagnostics.Append(r.ledgerErr("update", id, err))
			return
		}
	}

	g, err = r.data.ledger.GetGrant(ctx, id)
	if err != nil {
		resp.Diagnostics.Append(r.ledgerErr("read", id, err))
		return
	}
	drift, _, err := r.observe(ctx, g)
	if err != nil {
		resp.Diagnostics.AddWarning("Cannot inspect the target", err.Error())
	}
	g.Drift = drift
	resp.Diagnostics.Append(plan.fromGrant(ctx, g)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// renew moves the expiry of g: an extension (or shortening) while it holds, or
// a renewal that grants it again once ended. A holding grant whose permission
// is missing at the target is granted again too.
func (r *grantResource) renew(ctx context.Context, g *grant.Grant, expiresAt, now time.Time, missing bool) []diagError {
	if d := r.eventClosed(ctx, g); d != nil {
		return d
	}
	if _, err := r.data.policy.Resolve(grant.Expiry{At: expiresAt}, now); err != nil {
		return diagErrors(path.Root("expires_at"), "Invalid expiry", err.Error())
	}
	wasEnded := g.Status.Ended()
	old := g.ExpiresAt
	entry := ledger.EntryExtended
	if expiresAt.Before(old) {
		entry = ledger.EntryShortened
	}
	var obs target.Observation
	if wasEnded || !old.After(now) {
		entry = ledger.EntryRenewed // a new period, not a longer one
	}
	regrant := wasEnded || missing
	if regrant {
		mode, diags := r.preflight(ctx, g, false)
		if len(diags) > 0 {
			return diags
		}
		var err error
		if obs, err = r.apply(ctx, g, mode); err != nil {
			return diagErrors(path.Empty(), "Cannot renew the grant", err.Error())
		}
		if wasEnded {
			g.GrantedAt = now
		}
		g.VerifiedAt = now
	}
	if err := g.Renew(expiresAt); err != nil {
		return diagErrors(path.Empty(), "Cannot renew the grant", err.Error())
	}
	detail := fmt.Sprintf("expiry %s -> %s", old.Format(time.RFC3339), expiresAt.Format(time.RFC3339))
	entries := []ledger.Entry{{Type: entry, At: now, Actor: grant.ActorTerraform, Detail: detail}}
	if regrant {
		entries = append(entries, ledger.Entry{Type: ledger.EntryVerified, At: now, Actor: grant.ActorTerraform, Detail: obs.Evidence})
	}
	if err := r.data.ledger.UpdateGrant(ctx, g, entries...); err != nil {
		return []diagError{r.ledgerErr("update", g.ID, err)}
	}
	tflog.Info(ctx, "grant "+string(entry), map[string]any{"expires_at": expiresAt.Format(time.RFC3339)})
	return nil
}

// restore puts back a permission that is missing at the target while the grant holds.
func (r *grantResource) restore(ctx context.Context, g *grant.Grant, now time.Time) []diagError {
	obs, err := r.apply(ctx, g, modeGrant)
	if err != nil {
		return diagErrors(path.Empty(), "Cannot restore the missing access", err.Error())
	}
	g.VerifiedAt = now
	g.Drift = grant.DriftNone
	if err := r.data.ledger.UpdateGrant(ctx, g,
		ledger.Entry{Type: ledger.EntryRestored, At: now, Actor: grant.ActorTerraform, Detail: "permission was missing at the target; granted again"},
		ledger.Entry{Type: ledger.EntryVerified, At: now, Actor: grant.ActorTerraform, Detail: obs.Evidence},
	); err != nil {
		return []diagError{r.ledgerErr("update", g.ID, err)}
	}
	return nil
}

// eventClosed returns an error diagnostic if g's event is closed in the ledger.
func (r *grantResource) eventClosed(ctx context.Context, g *grant.Grant) []diagError {
	ev, err := r.data.ledger.GetEvent(ctx, g.Event.ID)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil
	}
	if err != nil {
		return []diagError{r.ledgerErr("read", g.ID, err)}
	}
	if !ev.Open || g.EndReason == grant.ReasonEventClosed {
		return diagErrors(path.Root("event").AtName("id"), "Event is closed",
			fmt.Sprintf("The event %s was closed at %s: a closed event cannot be renewed. Declare the access for a new "+
				"event instead (change event.id, which replaces this grant).", g.Event.ID, ev.ClosedAt.Format(time.RFC3339)))
	}
	return nil
}

func (r *grantResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state grantModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := state.ID.ValueString()
	ctx = tflog.SetField(ctx, "grant_id", id)
	g, err := r.data.ledger.GetGrant(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		resp.Diagnostics.AddWarning("Grant not found in the ledger",
			fmt.Sprintf("The grant %s is not in the ledger %s, so there is nothing to revoke through it. Check the target by hand.", id, r.data.ledgerName))
		return
	}
	if err != nil {
		resp.Diagnostics.Append(r.ledgerErr("read", id, err))
		return
	}
	if !g.Status.Holds() {
		tflog.Info(ctx, "grant already ended; its tombstone stays in the ledger", map[string]any{"end_reason": string(g.EndReason)})
		return
	}
	out, err := r.data.engine.End(ctx, g, grant.ReasonDestroyed, grant.ActorTerraform)
	if err != nil {
		resp.Diagnostics.AddError("Cannot revoke the grant",
			fmt.Sprintf("Revoking grant %s (%s) failed: %s\nThe grant stays in state; the failure is recorded and the sweeper retries it. Run terraform destroy again once the target is reachable.", g.ID, g.Target, err))
		return
	}
	tflog.Info(ctx, "grant revoked on destroy", map[string]any{"kept_by": out.KeptBy})
}
