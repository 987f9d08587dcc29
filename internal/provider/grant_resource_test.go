package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/jackc/pgx/v5"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/clock"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/grant"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/ledger"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/pgtest"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/sweep"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target"
	"github.com/eventaccess/terraform-provider-eventaccess/internal/target/postgresql"
)

// grantCfg describes one eventaccess_grant block.
type grantCfg struct {
	name      string // resource name
	role      string
	member    string
	eventID   string
	owner     string
	duration  string
	expiresAt string
	adopt     bool
	admin     bool
	terminate bool
	extra     string // raw HCL lines
}

func (c grantCfg) hcl() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resource \"eventaccess_grant\" %q {\n", c.name)
	owner := c.owner
	if owner == "" {
		owner = "platform-team@example.com"
	}
	fmt.Fprintf(&b, "  owner = %q\n", owner)
	fmt.Fprintf(&b, "  justification = \"cutover weekend\"\n")
	eventID := c.eventID
	if eventID == "" {
		eventID = "CHG-2291"
	}
	fmt.Fprintf(&b, "  event = {\n    id   = %q\n    kind = \"migration\"\n    url  = \"https://tickets.example.com/%s\"\n  }\n", eventID, eventID)
	if c.duration != "" {
		fmt.Fprintf(&b, "  duration = %q\n", c.duration)
	}
	if c.expiresAt != "" {
		fmt.Fprintf(&b, "  expires_at = %q\n", c.expiresAt)
	}
	fmt.Fprintf(&b, "  target = {\n    postgresql = {\n      connection = \"main\"\n      role = %q\n      member = %q\n", c.role, c.member)
	if c.admin {
		b.WriteString("      with_admin_option = true\n")
	}
	if c.terminate {
		b.WriteString("      terminate_sessions = true\n")
	}
	b.WriteString("    }\n  }\n")
	if c.adopt {
		b.WriteString("  adopt_existing = true\n")
	}
	b.WriteString(c.extra)
	b.WriteString("}\n")
	return b.String()
}

func (e *accEnv) config(grants ...grantCfg) string {
	s := e.providerHCL()
	for _, g := range grants {
		s += g.hcl()
	}
	return s
}

// checkDestroyed asks the target itself that the membership is gone, and the
// ledger that every grant is a tombstone.
func (e *accEnv) checkDestroyed(pairs ...[2]string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		for _, p := range pairs {
			if err := expectMembership(p[0], p[1], false); err != nil {
				return err
			}
		}
		gs, err := e.grants()
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.Status != grant.StatusRevoked {
				return fmt.Errorf("grant %s is %s after destroy, want revoked (a tombstone)", g.ID, g.Status)
			}
		}
		return nil
	}
}

func stateValue(addr, attr string, v knownvalue.Check) statecheck.StateCheck {
	return statecheck.ExpectKnownValue(addr, tfjsonpath.New(attr), v)
}

func planValue(addr, attr string, v knownvalue.Check) plancheck.PlanCheck {
	return plancheck.ExpectKnownValue(addr, tfjsonpath.New(attr), v)
}

// sweeper runs the sweep engine out of band, as the eventaccess-sweeper
// binary would: its own ledger handle, its own connection pool, at a given time.
func (e *accEnv) sweeper(at time.Time) (*sweep.Report, error) {
	store, err := ledger.Open(context.Background(), e.ledgerPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = store.Close() }()
	drv := postgresql.New(target.Connections{Configured: map[string]string{"main": e.connURL}})
	defer func() { _ = drv.Close() }()
	eng := &sweep.Engine{Ledger: store, Target: target.Mux{grant.TargetPostgreSQL: drv}, Clock: clock.Fixed(at)}
	return eng.Run(context.Background())
}

func TestAccGrant_createImportDestroy(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("legacy_rw"), e.name("migration_robot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	cfg := grantCfg{name: "test", role: role, member: member, duration: "72h"}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					if ok, err := e.canSetRole(member, role); err != nil || ok {
						t.Fatalf("before the grant, SET ROLE must fail: ok=%t err=%v", ok, err)
					}
				},
				Config: e.config(cfg),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate),
					planValue(addr, "expires_at", knownvalue.StringExact(e.clock.Now().Add(72*time.Hour).Format(time.RFC3339))),
					planValue(addr, "status", knownvalue.StringExact("active")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "status", knownvalue.StringExact("active")),
					stateValue(addr, "owner", knownvalue.StringExact("platform-team@example.com")),
					stateValue(addr, "event", knownvalue.ObjectExact(map[string]knownvalue.Check{
						"id": knownvalue.StringExact("CHG-2291"), "kind": knownvalue.StringExact("migration"),
						"url": knownvalue.StringExact("https://tickets.example.com/CHG-2291"),
					})),
					stateValue(addr, "granted_at", knownvalue.StringExact(e.clock.Now().Format(time.RFC3339))),
					stateValue(addr, "verified_at", knownvalue.NotNull()),
					stateValue(addr, "drift", knownvalue.Null()),
					stateValue(addr, "end_reason", knownvalue.Null()),
					stateValue(addr, "revoke_attempts", knownvalue.Int64Exact(0)),
					stateValue(addr, "id", knownvalue.StringRegexp(regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`))),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(*terraform.State) error { return e.expectSetRole(member, role, true)() },
					func(s *terraform.State) error {
						id := s.RootModule().Resources[addr].Primary.ID
						h, err := e.history(id)
						if err != nil {
							return err
						}
						if strings.Join(h, ",") != "requested,granted,verified" {
							return fmt.Errorf("history = %v, want requested,granted,verified", h)
						}
						return nil
					},
				),
			},
			{
				ResourceName:      addr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				// Destroy: revoke, verify, keep the tombstone.
				Config: e.providerHCL(),
				Check: func(*terraform.State) error {
					if err := e.expectSetRole(member, role, false)(); err != nil {
						return err
					}
					gs, err := e.grants()
					if err != nil {
						return err
					}
					if len(gs) != 1 || gs[0].Status != grant.StatusRevoked || gs[0].EndReason != grant.ReasonDestroyed ||
						gs[0].RevokedBy != grant.ActorTerraform || gs[0].VerifiedAt.IsZero() {
						return fmt.Errorf("want one tombstone (revoked, destroyed, by terraform, verified), got %+v", gs)
					}
					return nil
				},
			},
		},
	})
}

func TestAccGrant_importInvalidID(t *testing.T) {
	e := newAccEnv(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		Steps: []resource.TestStep{{
			Config:        e.providerHCL() + `resource "eventaccess_grant" "x" {}`,
			ResourceName:  "eventaccess_grant.x",
			ImportState:   true,
			ImportStateId: "postgresql/main/a/b",
			ExpectError:   regexp.MustCompile(`Invalid import id`),
		}},
	})
}

func TestAccGrant_expiryRevokesAtApply(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("cutover_rw"), e.name("robot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	cfg := e.config(grantCfg{name: "test", role: role, member: member, duration: "1h"})

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfg, Check: func(*terraform.State) error { return e.expectSetRole(member, role, true)() }},
			{
				// Two hours later on the fake clock: the plan revokes in place.
				PreConfig: func() { e.clock.Advance(2 * time.Hour) },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					planValue(addr, "status", knownvalue.StringExact("revoked")),
					planValue(addr, "end_reason", knownvalue.StringExact("expired")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "status", knownvalue.StringExact("revoked")),
					stateValue(addr, "revoked_by", knownvalue.StringExact("terraform")),
					stateValue(addr, "ended_at", knownvalue.StringExact(e.clock.Now().Add(2*time.Hour).Format(time.RFC3339))),
					stateValue(addr, "verified_at", knownvalue.NotNull()),
				},
				Check: func(*terraform.State) error { return e.expectSetRole(member, role, false)() },
			},
			{
				// The ended grant never comes back by itself.
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				Check: func(*terraform.State) error { return expectMembership(role, member, false) },
			},
		},
	})
}

// TestAccGrant_sweptOutOfBand is the whole point of the project, end to end
// with the real binaries: terraform applies two grants; nobody runs Terraform;
// the eventaccess-sweeper binary runs past the short one's expiry and revokes
// exactly that one; the next terraform plan proposes nothing and the state
// shows the revocation by the sweeper; a second sweep has nothing to do.
func TestAccGrant_sweptOutOfBand(t *testing.T) {
	e := newAccEnv(t)
	shortRole, longRole, member := e.name("short_rw"), e.name("long_ro"), e.name("robot")
	e.createRole(shortRole, false)
	e.createRole(longRole, false)
	e.createRole(member, true)
	cfg := e.config(
		grantCfg{name: "short", role: shortRole, member: member, duration: "1h", eventID: "INC-4711"},
		grantCfg{name: "long", role: longRole, member: member, duration: "48h", eventID: "PROJ-7"},
	)
	var shortID string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{shortRole, member}, [2]string{longRole, member}),
		Steps: []resource.TestStep{
			{Config: cfg, Check: func(s *terraform.State) error {
				shortID = s.RootModule().Resources["eventaccess_grant.short"].Primary.ID
				return nil
			}},
			{
				PreConfig: func() {
					e.clock.Advance(90 * time.Minute)
					rep, code := e.sweeperBinary("run", "--json", "--at", e.clock.Now().Format(time.RFC3339))
					if code != 0 || len(rep.Revoked) != 1 || len(rep.Failed) != 0 || len(rep.Drift) != 0 {
						t.Fatalf("sweeper run: exit %d, report %+v; want exit 0 and exactly one revoked", code, rep)
					}
					if r := rep.Revoked[0]; r.ID != shortID || r.EventID != "INC-4711" || r.Owner != "platform-team@example.com" ||
						r.EndReason != grant.ReasonExpired || r.Target != (grant.PostgreSQLTarget{Connection: "main", Role: shortRole, Member: member}).Key() {
						t.Fatalf("sweeper revoked %+v, want the short grant %s", r, shortID)
					}
					if rep, code := e.sweeperBinary("run", "--json", "--at", e.clock.Now().Format(time.RFC3339)); code != 0 || len(rep.Revoked) != 0 {
						t.Fatalf("second sweep: exit %d, revoked %d; want 0, 0", code, len(rep.Revoked))
					}
				},
				Config: cfg,
				// The sweep shows as changed outside Terraform; nothing is proposed.
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue("eventaccess_grant.short", "status", knownvalue.StringExact("revoked")),
					stateValue("eventaccess_grant.short", "revoked_by", knownvalue.StringExact("sweeper")),
					stateValue("eventaccess_grant.short", "end_reason", knownvalue.StringExact("expired")),
					stateValue("eventaccess_grant.short", "ended_at", knownvalue.StringExact(e.clock.Now().Add(90*time.Minute).Format(time.RFC3339))),
					stateValue("eventaccess_grant.short", "verified_at", knownvalue.NotNull()),
					stateValue("eventaccess_grant.long", "status", knownvalue.StringExact("active")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(*terraform.State) error { return e.expectSetRole(member, shortRole, false)() },
					func(*terraform.State) error { return e.expectSetRole(member, longRole, true)() },
				),
			},
			{
				// terraform apply is a no-op, and the ended grant is not granted again.
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            func(*terraform.State) error { return expectMembership(shortRole, member, false) },
			},
		},
	})
}

var (
	sweeperBuildOnce sync.Once
	sweeperBin       string
	sweeperBuildErr  error
)

// sweeperBinary builds eventaccess-sweeper once per test run and runs it on
// this test's ledger, with the connection from the environment as in
// production. It returns the JSON report and the exit code.
func (e *accEnv) sweeperBinary(args ...string) (*sweep.Report, int) {
	e.t.Helper()
	sweeperBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eventaccess-sweeper-bin-")
		if err != nil {
			sweeperBuildErr = err
			return
		}
		sweeperBin = filepath.Join(dir, "eventaccess-sweeper")
		out, err := exec.Command("go", "build", "-o", sweeperBin, "../../sweeper").CombinedOutput()
		if err != nil {
			sweeperBuildErr = fmt.Errorf("go build ./sweeper: %w\n%s", err, out)
		}
	})
	if sweeperBuildErr != nil {
		e.t.Fatal(sweeperBuildErr)
	}
	cmd := exec.Command(sweeperBin, append([]string{"--ledger", e.ledgerPath}, args...)...)
	cmd.Env = append(os.Environ(), "EVENTACCESS_CONNECTION_MAIN="+e.connURL)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		e.t.Fatalf("running the sweeper: %v", err)
	}
	if u, _ := url.Parse(e.connURL); u != nil {
		if pw, ok := u.User.Password(); ok && (strings.Contains(stdout.String(), pw) || strings.Contains(stderr.String(), pw)) {
			e.t.Fatal("the sweeper printed the connection password")
		}
	}
	var rep sweep.Report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		e.t.Fatalf("sweeper %v: exit %d, report is not JSON: %v\nstdout:\n%s\nstderr:\n%s", args, code, err, stdout.String(), stderr.String())
	}
	return &rep, code
}

func TestAccGrant_extendShortenRenew(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("release_rw"), e.name("deployer")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	t0 := e.clock.Now()
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	cfgAt := func(d time.Duration) string {
		return e.config(grantCfg{name: "test", role: role, member: member, expiresAt: at(d), eventID: "REL-2026-12"})
	}
	var id string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfgAt(time.Hour), Check: func(s *terraform.State) error {
				id = s.RootModule().Resources[addr].Primary.ID
				return nil
			}},
			{
				Config: cfgAt(3 * time.Hour),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					planValue(addr, "expires_at", knownvalue.StringExact(at(3*time.Hour))),
					planValue(addr, "status", knownvalue.StringExact("active")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{stateValue(addr, "expires_at", knownvalue.StringExact(at(3*time.Hour)))},
			},
			{Config: cfgAt(2 * time.Hour)}, // shortened, still in the future
			{
				// Past the expiry, swept out of band: a tombstone.
				PreConfig: func() {
					e.clock.Advance(4 * time.Hour)
					if _, err := e.sweeper(e.clock.Now()); err != nil {
						t.Fatal(err)
					}
				},
				Config:            cfgAt(2 * time.Hour),
				ConfigPlanChecks:  resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{stateValue(addr, "status", knownvalue.StringExact("revoked"))},
			},
			{
				// Explicit renewal while the event is open: granted again in place.
				Config: cfgAt(6 * time.Hour),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					planValue(addr, "status", knownvalue.StringExact("active")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "status", knownvalue.StringExact("active")),
					stateValue(addr, "end_reason", knownvalue.Null()),
					stateValue(addr, "granted_at", knownvalue.StringExact(t0.Add(4*time.Hour).Format(time.RFC3339))),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(*terraform.State) error { return e.expectSetRole(member, role, true)() },
					func(*terraform.State) error {
						h, err := e.history(id)
						if err != nil {
							return err
						}
						for _, want := range []string{"extended", "shortened", "revoked", "renewed"} {
							if countOf(h, want) != 1 {
								return fmt.Errorf("history %v: want exactly one %q", h, want)
							}
						}
						return nil
					},
				),
			},
		},
	})
}

func TestAccGrant_durationExtension(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("dr_rw"), e.name("dr_robot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	t0 := e.clock.Now()
	cfg := func(d string) string {
		return e.config(grantCfg{name: "test", role: role, member: member, duration: d, eventID: "DR-TEST-2026Q4"})
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfg("2h")},
			{
				// An hour later the duration is raised: the expiry moves from granted_at, not from now.
				PreConfig: func() { e.clock.Advance(time.Hour) },
				Config:    cfg("5h"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					planValue(addr, "expires_at", knownvalue.StringExact(t0.Add(5*time.Hour).Format(time.RFC3339))),
				}},
			},
			{Config: cfg("5h"), ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccGrant_eventClosed(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("inc_rw"), e.name("oncall_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	t0 := e.clock.Now()
	cfgAt := func(d time.Duration) string {
		return e.config(grantCfg{name: "test", role: role, member: member, expiresAt: t0.Add(d).Format(time.RFC3339), eventID: "INC-4711"})
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfgAt(24 * time.Hour)},
			{
				PreConfig: func() {
					if err := e.openLedger().CloseEvent(context.Background(), "INC-4711", "resolved", grant.ActorCLI, e.clock.Now()); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfgAt(24 * time.Hour),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					planValue(addr, "status", knownvalue.StringExact("revoked")),
					planValue(addr, "end_reason", knownvalue.StringExact("event_closed")),
				}},
				Check: func(*terraform.State) error { return expectMembership(role, member, false) },
			},
			{
				Config:      cfgAt(48 * time.Hour),
				ExpectError: regexp.MustCompile(`(?s)Event is closed.*cannot be renewed`),
			},
			{
				// A new grant for a closed event is refused at plan time too.
				Config:      cfgAt(24*time.Hour) + grantCfg{name: "again", role: role, member: member, duration: "1h", eventID: "INC-4711"}.hcl(),
				ExpectError: regexp.MustCompile(`Event is closed`),
			},
		},
	})
}

func TestAccGrant_driftMissingAndWidened(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("drift_rw"), e.name("drift_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	cfg := e.config(grantCfg{name: "test", role: role, member: member, duration: "24h"})
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				// Someone revokes it by hand: plan proposes to put it back.
				PreConfig: func() { e.exec("REVOKE " + q(role) + " FROM " + q(member)) },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					planValue(addr, "drift", knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{stateValue(addr, "drift", knownvalue.Null())},
				Check:             func(*terraform.State) error { return e.expectSetRole(member, role, true)() },
			},
			{
				// Someone widens it by hand: reported, not silently accepted.
				PreConfig:        func() { e.exec("GRANT " + q(role) + " TO " + q(member) + " WITH ADMIN OPTION") },
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "drift", knownvalue.StringExact("widened")),
					stateValue(addr, "status", knownvalue.StringExact("active")),
				},
			},
			{
				// The sweeper revokes a widened grant whole, as drift.
				PreConfig: func() {
					if _, err := e.sweeper(e.clock.Now()); err != nil {
						t.Fatal(err)
					}
				},
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "status", knownvalue.StringExact("revoked")),
					stateValue(addr, "end_reason", knownvalue.StringExact("drift")),
					stateValue(addr, "revoked_by", knownvalue.StringExact("sweeper")),
				},
				Check: func(*terraform.State) error { return expectMembership(role, member, false) },
			},
		},
	})
}

func TestAccGrant_overlappingGrants(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("shared_rw"), e.name("shared_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	a := grantCfg{name: "a", role: role, member: member, duration: "24h", eventID: "INC-1"}
	b := grantCfg{name: "b", role: role, member: member, duration: "48h", eventID: "INC-2"}
	var idA, idB string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: e.config(a, b), Check: func(s *terraform.State) error {
				idA = s.RootModule().Resources["eventaccess_grant.a"].Primary.ID
				idB = s.RootModule().Resources["eventaccess_grant.b"].Primary.ID
				return nil
			}},
			{
				// Ending b must not remove what a still justifies.
				Config: e.config(a),
				Check: func(*terraform.State) error {
					if err := expectMembership(role, member, true); err != nil {
						return fmt.Errorf("after destroying one of two overlapping grants: %w", err)
					}
					s, err := ledger.Open(context.Background(), e.ledgerPath)
					if err != nil {
						return err
					}
					defer func() { _ = s.Close() }()
					g, err := s.GetGrant(context.Background(), idB)
					if err != nil {
						return err
					}
					if g.Status != grant.StatusRevoked || g.KeptBy != idA {
						return fmt.Errorf("grant b: status %s kept_by %q, want revoked kept by %s", g.Status, g.KeptBy, idA)
					}
					return nil
				},
			},
			{Config: e.providerHCL(), Check: func(*terraform.State) error { return expectMembership(role, member, false) }},
		},
	})
}

func TestAccGrant_standingAccess(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("standing_rw"), e.name("standing_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	e.exec(fmt.Sprintf(`GRANT %q TO %q`, role, member))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{
				Config:      e.config(grantCfg{name: "test", role: role, member: member, duration: "1h"}),
				ExpectError: regexp.MustCompile(`(?s)Standing access.*adopt_existing = true`),
			},
			{
				Config: e.config(grantCfg{name: "test", role: role, member: member, duration: "1h", adopt: true}),
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "adopt_existing", knownvalue.Bool(true)),
					stateValue(addr, "status", knownvalue.StringExact("active")),
				},
				Check: func(s *terraform.State) error {
					h, err := e.history(s.RootModule().Resources[addr].Primary.ID)
					if err != nil {
						return err
					}
					if countOf(h, "adopted") != 1 {
						return fmt.Errorf("history %v: want one adopted", h)
					}
					return nil
				},
			},
		},
	})
}

func TestAccGrant_identifiersAreData(t *testing.T) {
	e := newAccEnv(t)
	role := e.name(`we"ird; DROP ROLE postgres; --`)
	member := e.name("Ünïcødé Robot-Mixed")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{
				Config: e.config(grantCfg{name: "test", role: role, member: member, duration: "1h", admin: true}),
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "target", knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"postgresql": knownvalue.ObjectPartial(map[string]knownvalue.Check{
							"role": knownvalue.StringExact(role), "member": knownvalue.StringExact(member),
						}),
					})),
					stateValue(addr, "drift", knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(*terraform.State) error { return e.expectSetRole(member, role, true)() },
					func(*terraform.State) error {
						found, admin, err := membership(role, member)
						if err != nil {
							return err
						}
						if !found || !admin {
							return fmt.Errorf("membership found=%t admin=%t, want with admin option", found, admin)
						}
						return nil
					},
				),
			},
			{ResourceName: addr, ImportState: true, ImportStateVerify: true},
		},
	})
}

func TestAccGrant_badInput(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("bad_rw"), e.name("bad_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	past := e.clock.Now().Add(-time.Hour).Format(time.RFC3339)
	future := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	base := grantCfg{name: "test", role: role, member: member, duration: "1h"}
	with := func(f func(*grantCfg)) string {
		c := base
		f(&c)
		return e.config(c)
	}
	unwritable := t.TempDir() // a directory is not a ledger file, even for root
	cases := []struct {
		name   string
		config string
		err    string
		apply  bool // the error comes at apply: at plan it is a warning (another resource may create the role)
	}{
		{"past expires_at", with(func(c *grantCfg) { c.duration, c.expiresAt = "", past }), `(?s)Invalid expiry.*not in the future`, false},
		{"both duration and expires_at", with(func(c *grantCfg) { c.expiresAt = future }), `(?s)Invalid Attribute Combination.*duration.*expires_at`, false},
		{"neither duration nor expires_at", with(func(c *grantCfg) { c.duration = "" }), `(?s)Missing Attribute Configuration.*duration.*expires_at`, false},
		{"duration over max_duration", with(func(c *grantCfg) { c.duration = "200h" }), `(?s)longer than max_duration 168h`, false},
		{"negative duration", with(func(c *grantCfg) { c.duration = "-1h" }), `duration must be positive`, false},
		{"malformed duration", with(func(c *grantCfg) { c.duration = "three days" }), `(?i)invalid.*duration`, false},
		{"missing owner", strings.Replace(with(func(*grantCfg) {}), `owner = "platform-team@example.com"`, "", 1), `(?s)Missing required argument.*owner`, false},
		{"blank owner", with(func(c *grantCfg) { c.owner = "   " }), `(?s)owner.*must not be blank`, false},
		{"empty justification", strings.Replace(with(func(*grantCfg) {}), `justification = "cutover weekend"`, `justification = ""`, 1), `(?s)justification.*at least 1`, false},
		{"missing event id", strings.Replace(with(func(*grantCfg) {}), `id   = "CHG-2291"`, "", 1), `(?s)Incorrect attribute value type|attribute "id" is required`, false},
		{"unknown event kind", strings.Replace(with(func(*grantCfg) {}), `kind = "migration"`, `kind = "party"`, 1), `(?s)kind.*value must be one of`, false},
		{"unknown connection", strings.Replace(with(func(*grantCfg) {}), `connection = "main"`, `connection = "nowhere"`, 1), `(?s)Unknown connection.*EVENTACCESS_CONNECTION_NOWHERE`, false},
		{"role does not exist", with(func(c *grantCfg) { c.role = e.name("no_such_role") }), `(?s)Target does not exist.*no_such_role`, true},
		{"member does not exist", with(func(c *grantCfg) { c.member = e.name("no_such_member") }), `(?s)Target does not exist.*no_such_member`, true},
		{"role name too long", with(func(c *grantCfg) { c.role = strings.Repeat("r", 64) }), `(?s)name too long.*63`, false},
		{"ledger not writable", strings.Replace(with(func(*grantCfg) {}), e.ledgerPath, unwritable, 1), `(?s)Cannot open the eventaccess ledger`, false},
		{"max_duration on the provider", strings.Replace(with(func(c *grantCfg) { c.duration = "3h" }), "ledger =", "max_duration = \"2h\"\n  ledger =", 1), `(?s)3h.*longer than max_duration 2h`, false},
	}
	steps := make([]resource.TestStep, 0, len(cases))
	for _, c := range cases {
		steps = append(steps, resource.TestStep{
			Config:      c.config,
			PlanOnly:    !c.apply,
			ExpectError: regexp.MustCompile(c.err),
		})
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		Steps:                    steps,
	})
	// Nothing half-done: no ledger record, no membership.
	gs, err := e.grants()
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 0 {
		t.Fatalf("bad input left %d grant(s) in the ledger", len(gs))
	}
	if err := expectMembership(role, member, false); err != nil {
		t.Fatal(err)
	}
}

func TestAccGrant_noSecretsInStateOrLedger(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("secret_rw"), e.name("secret_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	u, err := url.Parse(e.connURL)
	if err != nil {
		t.Fatal(err)
	}
	password, ok := u.User.Password()
	if !ok || len(password) < 8 {
		t.Fatalf("the test server's URL must carry a real password, got %q", password)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{{
			Config: e.config(grantCfg{name: "test", role: role, member: member, duration: "1h"}),
			Check: func(s *terraform.State) error {
				js, err := json.Marshal(s)
				if err != nil {
					return err
				}
				if strings.Contains(string(js), password) {
					return fmt.Errorf("the connection password is in the state")
				}
				if !strings.Contains(string(js), role) {
					return fmt.Errorf("state check is blind: the role name is not in the state either")
				}
				var ledgerBytes []byte
				for _, f := range []string{e.ledgerPath, e.ledgerPath + "-wal"} {
					b, err := os.ReadFile(f)
					if err != nil && !os.IsNotExist(err) {
						return err
					}
					ledgerBytes = append(ledgerBytes, b...)
				}
				if strings.Contains(string(ledgerBytes), password) {
					return fmt.Errorf("the connection password is in the ledger files")
				}
				if !strings.Contains(string(ledgerBytes), role) {
					return fmt.Errorf("ledger check is blind: the role name is not in the ledger files either")
				}
				return nil
			},
		}},
	})
}

func TestAccGrant_terminateSessionsOnDestroy(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("session_rw"), e.name("session_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	ctx := context.Background()
	var held *pgx.Conn
	t.Cleanup(func() {
		if held != nil {
			_ = held.Close(ctx)
		}
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{
				Config: e.config(grantCfg{name: "test", role: role, member: member, duration: "1h", terminate: true}),
				Check: func(*terraform.State) error {
					// A session that ran SET ROLE keeps the privilege after REVOKE, unless it is ended.
					c, err := pgtest.Conn(ctx, pg.URLFor(member, "pw-"+e.suffix, "postgres"))
					if err != nil {
						return err
					}
					held = c
					_, err = held.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
					return err
				},
			},
			{
				Config: e.providerHCL(),
				Check: func(*terraform.State) error {
					var who string
					err := held.QueryRow(ctx, "SELECT current_user").Scan(&who)
					if err == nil {
						return fmt.Errorf("the member's session survived the revoke and still runs as %q", who)
					}
					return nil
				},
			},
		},
	})
}

func TestAccGrant_extendWhileMissingRestores(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("ext_rw"), e.name("ext_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	cfg := func(d string) string {
		return e.config(grantCfg{name: "test", role: role, member: member, duration: d})
	}
	var id string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfg("2h"), Check: func(s *terraform.State) error {
				id = s.RootModule().Resources[addr].Primary.ID
				return nil
			}},
			{
				// Revoked by hand, then extended: the extension puts the access back too.
				PreConfig: func() { e.exec(fmt.Sprintf(`REVOKE %q FROM %q`, role, member)) },
				Config:    cfg("4h"),
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "drift", knownvalue.Null()),
					stateValue(addr, "status", knownvalue.StringExact("active")),
					stateValue(addr, "granted_at", knownvalue.StringExact(e.clock.Now().Format(time.RFC3339))),
					stateValue(addr, "expires_at", knownvalue.StringExact(e.clock.Now().Add(4*time.Hour).Format(time.RFC3339))),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					func(*terraform.State) error { return e.expectSetRole(member, role, true)() },
					func(*terraform.State) error {
						h, err := e.history(id)
						if err != nil {
							return err
						}
						if countOf(h, "extended") != 1 || countOf(h, "verified") != 2 {
							return fmt.Errorf("history %v: want one extended and a second verified", h)
						}
						return nil
					},
				),
			},
		},
	})
}

func TestAccGrant_overlapWithAdminOption(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("mixed_rw"), e.name("mixed_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	cfg := e.config(
		grantCfg{name: "plain", role: role, member: member, duration: "24h", eventID: "INC-1"},
		grantCfg{name: "admin", role: role, member: member, duration: "24h", eventID: "INC-2", admin: true},
	)
	plainOnly := e.config(grantCfg{name: "plain", role: role, member: member, duration: "24h", eventID: "INC-1"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				// The ADMIN OPTION one grant declares is not drift for the other.
				PreConfig: func() {
					rep, err := e.sweeper(e.clock.Now())
					if err != nil {
						t.Fatal(err)
					}
					if len(rep.Revoked)+len(rep.Kept)+len(rep.Drift)+len(rep.Failed) != 0 {
						t.Fatalf("sweep acted on overlapping grants that differ only by admin option: %+v", rep)
					}
				},
				Config:           cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue("eventaccess_grant.plain", "drift", knownvalue.Null()),
					stateValue("eventaccess_grant.plain", "status", knownvalue.StringExact("active")),
					stateValue("eventaccess_grant.admin", "status", knownvalue.StringExact("active")),
				},
			},
			{
				// The grant that declared ADMIN OPTION ends: the option goes, the membership stays.
				Config: plainOnly,
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue("eventaccess_grant.plain", "drift", knownvalue.Null()),
					stateValue("eventaccess_grant.plain", "status", knownvalue.StringExact("active")),
				},
				Check: func(*terraform.State) error {
					found, admin, err := membership(role, member)
					if err != nil {
						return err
					}
					if !found || admin {
						return fmt.Errorf("after the admin grant ended: membership %t, admin option %t; want the membership without the option", found, admin)
					}
					return e.expectSetRole(member, role, true)()
				},
			},
			{
				// And the sweeper leaves the remaining plain grant alone.
				PreConfig: func() {
					rep, err := e.sweeper(e.clock.Now())
					if err != nil {
						t.Fatal(err)
					}
					if len(rep.Revoked)+len(rep.Kept)+len(rep.Drift)+len(rep.Failed) != 0 {
						t.Fatalf("sweep acted on the remaining grant: %+v", rep)
					}
				},
				Config:           plainOnly,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// expires_at keeps the form it was written in (an offset, fractional seconds):
// no perpetual diff, and the expiry is the same instant.
func TestAccGrant_expiresAtAsWritten(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("tz_rw"), e.name("tz_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	written := e.clock.Now().Add(3*time.Hour + 500*time.Millisecond).In(time.FixedZone("CET", 3600)).Format(time.RFC3339Nano)
	cfg := e.config(grantCfg{name: "test", role: role, member: member, expiresAt: written})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{
				Config:            cfg,
				ConfigStateChecks: []statecheck.StateCheck{stateValue(addr, "expires_at", knownvalue.StringExact(written))},
			},
			{Config: cfg, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// failingRevokes is a target whose revokes fail (a target the sweeper cannot
// reach, as far as revoking goes).
type failingRevokes struct{ target.Target }

func (failingRevokes) Revoke(context.Context, grant.Target) error {
	return fmt.Errorf("connection refused")
}

// An irrevocable grant (the sweeper failed to revoke it too often) shows on
// every plan, which proposes to revoke it; terraform apply then does.
func TestAccGrant_irrevocableIsRevokedByApply(t *testing.T) {
	e := newAccEnv(t)
	role, member := e.name("stuck_rw"), e.name("stuck_bot")
	e.createRole(role, false)
	e.createRole(member, true)
	addr := "eventaccess_grant.test"
	cfg := e.config(grantCfg{name: "test", role: role, member: member, duration: "1h"})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: e.factories(),
		CheckDestroy:             e.checkDestroyed([2]string{role, member}),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig: func() {
					e.clock.Advance(2 * time.Hour)
					store := e.openLedger()
					drv := postgresql.New(target.Connections{Configured: map[string]string{"main": e.connURL}})
					defer func() { _ = drv.Close() }()
					eng := &sweep.Engine{Ledger: store, Target: failingRevokes{target.Mux{grant.TargetPostgreSQL: drv}}, Clock: e.clock, MaxAttempts: 1}
					rep, err := eng.Run(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if len(rep.Irrevocable) != 1 {
						t.Fatalf("want one irrevocable grant, got %+v", rep)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					planValue(addr, "status", knownvalue.StringExact("revoked")),
					planValue(addr, "end_reason", knownvalue.StringExact("expired")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					stateValue(addr, "status", knownvalue.StringExact("revoked")),
					stateValue(addr, "revoked_by", knownvalue.StringExact("terraform")),
					stateValue(addr, "last_error", knownvalue.Null()),
				},
				Check: func(*terraform.State) error { return expectMembership(role, member, false) },
			},
		},
	})
}
