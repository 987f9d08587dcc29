// Package provider is the Terraform glue of eventaccess: schemas, CRUD, import,
// validators and documentation text. It converts between Terraform values and
// the internal/grant domain; the work is done by internal/ledger,
// internal/target and internal/sweep.
package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/function"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/clock"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/sweep"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target/postgresql"
)

var _ provider.Provider = (*eventaccessProvider)(nil)

// eventaccessProvider is the provider implementation.
type eventaccessProvider struct {
	version string
	clock   clock.Clock
	getenv  func(string) string
}

// New returns a provider factory for the given version, on the wall clock.
func New(version string) func() provider.Provider {
	return newWithClock(version, clock.Real{}, os.Getenv)
}

// newWithClock returns a provider factory with an injected clock (tests use a fake one).
func newWithClock(version string, clk clock.Clock, getenv func(string) string) func() provider.Provider {
	return func() provider.Provider {
		return &eventaccessProvider{version: version, clock: clk, getenv: getenv}
	}
}

type providerModel struct {
	Ledger      types.String         `tfsdk:"ledger"`
	MaxDuration timetypes.GoDuration `tfsdk:"max_duration"`
	Connections types.Map            `tfsdk:"connections"`
}

type connectionModel struct {
	URL types.String `tfsdk:"url"`
}

// providerData is what Configure hands to resources.
type providerData struct {
	clock       clock.Clock
	policy      grant.Policy
	ledger      ledger.Store
	ledgerName  string // for messages: the DSN without any password
	targets     target.Target
	connections target.Connections
	engine      *sweep.Engine
}

func (p *eventaccessProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "eventaccess"
	resp.Version = p.version
}

func (p *eventaccessProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The eventaccess provider grants temporary access for a business event " +
			"(an incident, a cutover, a release window) and makes it end with the event: every grant has an " +
			"accountable owner, an event and a hard expiry, recorded in a ledger that the `eventaccess-sweeper` " +
			"also reads, so access is revoked even if nobody runs Terraform again.",
		Attributes: map[string]schema.Attribute{
			"ledger": schema.StringAttribute{
				MarkdownDescription: "Where grants are recorded: a SQLite file path or `sqlite:` URL (the embedded " +
					"default). Defaults to the environment variable `EVENTACCESS_LEDGER`, else `eventaccess.db` in the " +
					"working directory. The sweeper must use the same ledger. A `postgres://` URL is reserved for the " +
					"shared ledger of a later version.",
				Optional:   true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
			},
			"max_duration": schema.StringAttribute{
				CustomType: timetypes.GoDurationType{},
				MarkdownDescription: "The longest any grant may last from the moment it is granted or renewed, as a Go " +
					"duration (`72h`, `90m`). Defaults to `168h` (7 days). No grant is open-ended.",
				Optional: true,
			},
			"connections": schema.MapNestedAttribute{
				MarkdownDescription: "Named connections to target systems. A grant names a connection " +
					"(`connection = \"legacy\"`); the ledger and the state store only the name, never the URL. A name " +
					"that is not configured here is read from the environment variable " +
					"`EVENTACCESS_CONNECTION_<NAME>` (the name upper-cased, any character other than A-Z and 0-9 " +
					"as `_`), the same rule the sweeper uses.",
				Optional: true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"url": schema.StringAttribute{
							MarkdownDescription: "Connection URL, for PostgreSQL `postgres://user:password@host:port/db`. " +
								"The user must be able to grant and revoke the roles it manages (`CREATEROLE` or `ADMIN OPTION`).",
							Required:   true,
							Sensitive:  true,
							Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
						},
					},
				},
				Validators: []validator.Map{mapvalidator.KeysAre(connectionNameValidator{})},
			},
		},
	}
}

func (p *eventaccessProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.Ledger.IsUnknown() || cfg.MaxDuration.IsUnknown() || cfg.Connections.IsUnknown() {
		resp.Diagnostics.AddError("Provider configuration is not known yet",
			"The eventaccess provider's ledger, max_duration and connections must be known when planning: "+
				"use literal values or variables, not attributes of resources that are not created yet.")
		return
	}

	policy := grant.DefaultPolicy()
	if !cfg.MaxDuration.IsNull() {
		d, diags := cfg.MaxDuration.ValueGoDuration()
		resp.Diagnostics.Append(diags...)
		if resp.Diagnostics.HasError() {
			return
		}
		if d <= 0 {
			resp.Diagnostics.AddAttributeError(path.Root("max_duration"), "Invalid max_duration",
				fmt.Sprintf("max_duration must be positive, got %q.", cfg.MaxDuration.ValueString()))
			return
		}
		policy.MaxDuration = d
	}

	dsn := cfg.Ledger.ValueString()
	if cfg.Ledger.IsNull() {
		dsn = ledger.DefaultDSN(p.getenv)
	}

	conns := target.Connections{Configured: map[string]string{}, Getenv: p.getenv}
	if !cfg.Connections.IsNull() {
		var m map[string]connectionModel
		resp.Diagnostics.Append(cfg.Connections.ElementsAs(ctx, &m, false)...)
		if resp.Diagnostics.HasError() {
			return
		}
		for name, c := range m {
			if c.URL.IsUnknown() {
				resp.Diagnostics.AddAttributeError(path.Root("connections").AtMapKey(name).AtName("url"),
					"Connection URL is not known yet", "The URL of a connection must be known when planning.")
				return
			}
			conns.Configured[name] = c.URL.ValueString()
		}
	}

	store, err := sharedLedger(ctx, dsn)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("ledger"), "Cannot open the eventaccess ledger",
			fmt.Sprintf("Opening the ledger %s failed: %s\n\nCheck the provider's ledger attribute or EVENTACCESS_LEDGER: "+
				"the file's directory must exist and be writable.", ledger.Describe(dsn), err))
		return
	}
	targets := sharedTargets(conns)

	data := &providerData{
		clock:       p.clock,
		policy:      policy,
		ledger:      store,
		ledgerName:  ledger.Describe(dsn),
		targets:     targets,
		connections: conns,
		engine:      &sweep.Engine{Ledger: store, Target: targets, Clock: p.clock},
	}
	tflog.Debug(ctx, "eventaccess provider configured", map[string]any{
		"ledger":       data.ledgerName,
		"max_duration": policy.MaxDuration.String(),
		"connections":  len(conns.Configured),
	})
	resp.ResourceData = data
	resp.DataSourceData = data
}

func (p *eventaccessProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newGrantResource}
}

func (p *eventaccessProvider) DataSources(context.Context) []func() datasource.DataSource {
	return nil
}

func (p *eventaccessProvider) Functions(context.Context) []func() function.Function {
	return nil
}

// The plugin process serves one Terraform command, but Terraform (and the
// acceptance tests, which run the provider in-process) configures a provider
// instance many times. Ledgers and connection pools are kept per process and
// shared between instances with the same settings, so nothing leaks.
var shared = struct {
	sync.Mutex
	ledgers map[string]ledger.Store
	targets map[string]target.Target
}{ledgers: map[string]ledger.Store{}, targets: map[string]target.Target{}}

func sharedLedger(ctx context.Context, dsn string) (ledger.Store, error) {
	shared.Lock()
	defer shared.Unlock()
	if s, ok := shared.ledgers[dsn]; ok {
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := ledger.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	shared.ledgers[dsn] = s
	return s, nil
}

// sharedTargets returns the target drivers for one set of configured
// connections. The key is a hash of the names and URLs; the URLs themselves are
// never kept outside the resolver.
func sharedTargets(conns target.Connections) target.Target {
	names := make([]string, 0, len(conns.Configured))
	for n := range conns.Configured {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%d:%s%d:%s", len(n), n, len(conns.Configured[n]), conns.Configured[n])
	}
	key := hex.EncodeToString(h.Sum(nil))

	shared.Lock()
	defer shared.Unlock()
	if t, ok := shared.targets[key]; ok {
		return t
	}
	t := target.Mux{grant.TargetPostgreSQL: postgresql.New(conns)}
	shared.targets[key] = t
	return t
}
